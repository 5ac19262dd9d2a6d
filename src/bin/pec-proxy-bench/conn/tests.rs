use super::*;

fn conn(io: tokio::io::DuplexStream) -> Conn {
    Conn {
        io: BufStream::with_capacity(2048, 2048, Box::new(io)),
        timeout: Duration::from_secs(5),
        line: Vec::new(),
    }
}

/// The end of a POP3 body is found whatever the reads' boundaries,
/// and a dot inside a line or a stuffed dot line is not the end.
#[tokio::test]
async fn multiline_finds_the_end_across_reads() {
    let body = b"+OK 40 octets\r\nline one.\r\n..stuffed\r\nlast\r\n.\r\n";
    for split in 1..body.len() {
        let (client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            server.write_all(&body[..split]).await.unwrap();
            server.flush().await.unwrap();
            tokio::task::yield_now().await;
            server.write_all(&body[split..]).await.unwrap();
            server
        });
        let mut c = conn(client);
        c.until(b"+OK", &[b"-ERR"]).await.unwrap();
        let size = c.multiline().await.unwrap();
        assert_eq!(
            size,
            (body.len() - b"+OK 40 octets\r\n".len() - 3) as u64,
            "split {split}"
        );
        drop(writer.await.unwrap());
    }
    // An empty body: the status line's CRLF starts the terminator.
    let (client, mut server) = tokio::io::duplex(64);
    server.write_all(b"+OK\r\n.\r\n").await.unwrap();
    let mut c = conn(client);
    c.until(b"+OK", &[b"-ERR"]).await.unwrap();
    assert_eq!(c.multiline().await.unwrap(), 0);
}
