// Reading and writing the rows that make up a mailbox record (included by
// each SQL backend's `sql` module: `Db` is the backend's database type).

type DbRow = <Db as sqlx::Database>::Row;

/// Reads the whole record of one mailbox, in one read transaction (a
/// consistent snapshot of the three tables).
async fn load_mailbox(pool: &sqlx::Pool<Db>, address: &str) -> Result<Option<MailboxRecord>, StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(snapshot) = super::SNAPSHOT {
        sqlx::query(snapshot).execute(&mut *tx).await?;
    }
    let Some(row) = sqlx::query(
        "SELECT address, active, password_hash, imap, pop3, smtp, two_step, pop3_delete, route \
         FROM mailboxes WHERE address = $1",
    )
    .bind(address)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let mut record = MailboxRecord {
        address: row.try_get("address")?,
        active: row.try_get("active")?,
        password_hash: row.try_get("password_hash")?,
        protocols: ProtocolSwitches {
            imap: row.try_get("imap")?,
            pop3: row.try_get("pop3")?,
            smtp: row.try_get("smtp")?,
        },
        two_step: row.try_get("two_step")?,
        pop3_delete: pop3_delete(&row)?,
        app_passwords: Vec::new(),
        collaborators: Vec::new(),
        route: row.try_get("route")?,
    };
    for row in sqlx::query(
        "SELECT name, active, password_hash, may_read, may_write, may_send, mail_client, \
         pop3_delete FROM collaborators WHERE mailbox = $1 ORDER BY name",
    )
    .bind(address)
    .fetch_all(&mut *tx)
    .await?
    {
        record.collaborators.push(Collaborator {
            name: row.try_get("name")?,
            active: row.try_get("active")?,
            password_hash: row.try_get("password_hash")?,
            rights: Rights {
                read: row.try_get("may_read")?,
                write: row.try_get("may_write")?,
                send: row.try_get("may_send")?,
                mail_client: row.try_get("mail_client")?,
            },
            pop3_delete: pop3_delete(&row)?,
            app_passwords: Vec::new(),
        });
    }
    for row in sqlx::query(&format!(
        "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE mailbox = $1 ORDER BY id"
    ))
    .bind(address)
    .fetch_all(&mut *tx)
    .await?
    {
        let app = app_password(&row)?;
        let collaborator: Option<String> = row.try_get("collaborator")?;
        match collaborator {
            None => record.app_passwords.push(app),
            Some(name) => record
                .collaborators
                .iter_mut()
                .find(|c| c.name == name)
                .ok_or_else(|| StoreError::Corrupt(format!("app password {}", app.id)))?
                .app_passwords
                .push(app),
        }
    }
    tx.commit().await?;
    Ok(Some(record))
}

fn pop3_delete(row: &DbRow) -> Result<Pop3Delete, StoreError> {
    let text: String = row.try_get("pop3_delete")?;
    Pop3Delete::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("pop3_delete {text:?}")))
}

fn app_password(row: &DbRow) -> Result<AppPassword, StoreError> {
    Ok(AppPassword {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        hash: row.try_get("hash")?,
        created: row.try_get("created_at")?,
        expires: row.try_get("expires_at")?,
        last_used: row.try_get("last_used_at")?,
    })
}

fn app_password_info(row: &DbRow) -> Result<AppPasswordInfo, StoreError> {
    Ok(AppPasswordInfo {
        id: row.try_get("id")?,
        mailbox: row.try_get("mailbox")?,
        collaborator: row.try_get("collaborator")?,
        label: row.try_get("label")?,
        created: row.try_get("created_at")?,
        expires: row.try_get("expires_at")?,
        last_used: row.try_get("last_used_at")?,
    })
}

const APP_PASSWORD_COLUMNS: &str =
    "id, mailbox, collaborator, label, hash, created_at, expires_at, last_used_at";

async fn mailbox_must_exist(tx: &mut sqlx::Transaction<'_, Db>, address: &str) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT 1 FROM mailboxes WHERE address = $1")
        .bind(address)
        .fetch_optional(&mut **tx)
        .await?;
    found
        .map(drop)
        .ok_or_else(|| StoreError::MailboxNotFound(address.into()))
}

async fn insert_app_password(
    tx: &mut sqlx::Transaction<'_, Db>,
    new: &NewAppPassword,
) -> Result<i64, StoreError> {
    mailbox_must_exist(tx, &new.mailbox).await?;
    if let Some(name) = &new.collaborator {
        let found = sqlx::query("SELECT 1 FROM collaborators WHERE mailbox = $1 AND name = $2")
            .bind(&new.mailbox)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::CollaboratorNotFound(format!(
                "{name}/{}",
                new.mailbox
            )));
        }
    }
    let id = bump(tx, "app_password_id").await?;
    sqlx::query(
        "INSERT INTO app_passwords (id, mailbox, collaborator, label, hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&new.mailbox)
    .bind(&new.collaborator)
    .bind(&new.label)
    .bind(&new.hash)
    .bind(new.created)
    .bind(new.expires)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}
