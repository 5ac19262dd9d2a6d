//! The operator's view of the live sessions, on a Unix socket beside the
//! account store: `pec-proxy session list [MAILBOX]` and
//! `pec-proxy session end <ID|MAILBOX|NAME/MAILBOX>` against the running
//! proxy.
//!
//! Protection is the file system's: the socket is created mode 0600
//! (owner only) where `[store] control_socket` says (by default beside a
//! SQLite database, [`crate::config::StoreBackend::default_control_socket`]),
//! so whoever may end sessions is whoever may already change the accounts
//! (and root).
//! Nothing on the network reaches it, unlike the status listener, which a
//! private network may scrape without credentials.
//!
//! One request per connection, one line (at most [`MAX_REQUEST`] bytes,
//! within [`IO_TIMEOUT`]): `list`, `list MAILBOX` or `end TARGET`; the
//! answer is one JSON document, then the proxy closes. At most
//! [`MAX_CONNECTIONS`] requests at once.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::registry::{Entry, Sessions};
use crate::access::policy::CredentialUsed;

/// Longest request line: a command and an address (RFC 5321 §4.5.3.1.3:
/// a path is at most 256 octets).
pub const MAX_REQUEST: u64 = 1024;
/// Deadline for reading the request, and again for writing the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served at once; beyond, new connections are closed.
pub const MAX_CONNECTIONS: usize = 8;

/// One live session, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: u64,
    pub protocol: String,
    pub mailbox: String,
    pub collaborator: Option<String>,
    /// `main`, `app:<id>`, or `pass-through`.
    pub credential: String,
    pub client: String,
    /// Unix seconds at login.
    pub since: i64,
}

impl SessionInfo {
    fn new(id: u64, e: Entry) -> Self {
        Self {
            id,
            protocol: e.protocol.as_str().to_owned(),
            mailbox: e.mailbox,
            collaborator: e.collaborator,
            credential: match e.credential {
                Some(CredentialUsed::Main { .. }) => "main".into(),
                Some(CredentialUsed::App { id }) => format!("app:{id}"),
                None => "pass-through".into(),
            },
            client: e.peer.to_string(),
            since: e.since,
        }
    }
}

/// What `end` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Sessions told to end (each gets its protocol's goodbye).
    pub ended: usize,
}

/// Binds the control socket at `path`, owner-only. A socket file left by
/// an earlier run is replaced (any other kind of file is an error).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Between bind and chmod the socket has the umask's mode (a connect
    // needs write permission: 0755 under the usual umask 022, so owner
    // only already); the account store's directory is the proxy's own.
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers requests on `listener` for as long as the server runs.
pub async fn serve(listener: UnixListener, sessions: Arc<Sessions>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(MAX_REQUEST));
            let read = tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line)).await;
            let answer = match read {
                Ok(Ok(_)) => answer(&sessions, line.trim()),
                _ => return,
            };
            let _ = tokio::time::timeout(IO_TIMEOUT, async {
                write.write_all(answer.as_bytes()).await?;
                write.shutdown().await
            })
            .await;
            drop(permit);
        });
    }
}

/// The JSON answer to one request line.
fn answer(sessions: &Sessions, request: &str) -> String {
    let (command, argument) = match request.split_once(' ') {
        Some((c, a)) => (c, Some(a.trim())),
        None => (request, None),
    };
    let json = match (command, argument) {
        ("list", mailbox) => {
            let mailbox = mailbox.map(str::to_lowercase);
            let list: Vec<SessionInfo> = sessions
                .list(mailbox.as_deref())
                .into_iter()
                .map(|(id, e)| SessionInfo::new(id, e))
                .collect();
            serde_json::to_string(&list)
        }
        ("end", Some(target)) if !target.is_empty() => {
            let ended = sessions.end_matching(target);
            tracing::info!(target, ended, "sessions ended by the operator");
            serde_json::to_string(&Ended { ended })
        }
        _ => Ok(r#"{"error":"expected: list [MAILBOX] | end ID|MAILBOX|NAME/MAILBOX"}"#.to_owned()),
    };
    let mut json = json.unwrap_or_else(|_| r#"{"error":"internal"}"#.to_owned());
    json.push('\n');
    json
}

/// The client side (the `pec-proxy session` command): sends `request` to
/// the proxy listening at `path` and returns its JSON answer.
pub fn request(path: &Path, request: &str) -> io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[cfg(test)]
mod tests;
