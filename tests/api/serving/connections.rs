//! A connection's limits: a client too slow with its headers or its body is cut off, an idle
//! kept-alive connection closes after the idle timeout, and past the connection cap a new
//! connection waits for a place.

use super::*;

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_at_a_time_is_cut_off_while_others_are_served() {
    let app = spawn(&server_toml("header_read_timeout_s = 1"), &[]).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let mut cut = false;
    // One byte every 200 ms: the 36-byte head would take 7 s.
    for &b in HEALTHZ.iter().take(HEALTHZ.len() - 1) {
        if slow.write_all(&[b]).await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        // Meanwhile another client is served at once.
        let mut other = TcpStream::connect(app.addr).await.unwrap();
        other.write_all(HEALTHZ).await.unwrap();
        let (status, _, _) = read_answer(&mut other).await;
        assert_eq!(status, 200);
        if closed_within(&mut slow, Duration::from_millis(200))
            .await
            .is_some()
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "the slow client was never cut off ({sent} bytes sent)");
    let took = started.elapsed();
    assert!(
        sent < HEALTHZ.len() - 1,
        "cut off before its head was complete"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut off about 1 s after its first byte: {took:?}"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_one() {
    let app = spawn(
        &server_toml("header_read_timeout_s = 0.5\nidle_timeout_s = 2"),
        &[],
    )
    .await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut tcp).await.0, 200);
    // Idle for longer than the header timeout: still open, and serves the next request.
    assert_eq!(
        closed_within(&mut tcp, Duration::from_millis(1000)).await,
        None
    );
    tcp.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut tcp).await.0, 200);
    let closed = closed_within(&mut tcp, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(
        closed >= Duration::from_millis(1800),
        "closed after the idle timeout, not before: {closed:?}"
    );
}

#[tokio::test]
async fn a_chunked_body_that_never_ends_gets_408_with_the_error_body() {
    let app = spawn(&server_toml("body_read_timeout_s = 1"), &[]).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/judge/binary HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut reader = tcp.try_clone_for_test();
    let writer = async {
        // A byte every 300 ms, for at most 10 s: the body never ends.
        for _ in 0..33 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if tcp.write_all(b"1\r\n \r\n").await.is_err() {
                break;
            }
        }
    };
    let (answer, ()) = tokio::join!(async { read_answer(&mut reader).await }, async {
        tokio::select! {
            _ = writer => {},
            _ = tokio::time::sleep(Duration::from_secs(4)) => {},
        }
    });
    let (status, head, body) = answer;
    assert_eq!(status, 408, "{head}\n{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A second handle on the same socket, so one task writes while another reads.
trait TryCloneForTest {
    fn try_clone_for_test(&self) -> TcpStream;
}

impl TryCloneForTest for TcpStream {
    fn try_clone_for_test(&self) -> TcpStream {
        let fd = std::os::fd::AsFd::as_fd(self).try_clone_to_owned().unwrap();
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true).unwrap();
        TcpStream::from_std(std).unwrap()
    }
}

/// Log lines written while a test runs, on this thread (the test's runtime runs the server).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_waits_until_one_closes_with_one_warning() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let app = spawn(&server_toml("max_connections = 2"), &[]).await;
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    first.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut first).await.0, 200);
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    second.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut second).await.0, 200);
    // Two more wait in the backlog: connected, but not served.
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let mut fourth = TcpStream::connect(app.addr).await.unwrap();
    fourth.write_all(HEALTHZ).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        waited.is_err(),
        "the third connection was served past the cap"
    );
    drop(first);
    assert_eq!(
        read_answer(&mut third).await.0,
        200,
        "served once one closed"
    );
    drop(second);
    assert_eq!(read_answer(&mut fourth).await.0, 200);
    let text = logs.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("server.max_connections"))
        .count();
    assert_eq!(warnings, 1, "one warning for the episode:\n{text}");
}
