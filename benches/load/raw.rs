//! A minimal HTTP/1.1 client for the open loop, where the client must stay cheap: the server
//! and the load generator share the machine's cores, and every microsecond the client spends
//! per request is one the server does not get. Requests are written out whole (head and body
//! in one buffer, one `write`), answers are read into one buffer and only their status line
//! and framing headers are looked at; keep-alive connections are pooled, one per request in
//! flight. No timers, no channels, no header maps: what is left is the socket calls.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer head read; codeward's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

pub struct RawClient {
    addr: SocketAddr,
    host: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl RawClient {
    /// A client of `base` (`http://host:port`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let host = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("not an http:// base: {base}"))?
            .trim_end_matches('/')
            .to_owned();
        let addr = host.parse()?;
        Ok(Self {
            addr,
            host,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A whole request: `method path`, extra header lines (each ending in `\r\n`) and a JSON
    /// body if any.
    pub fn request(&self, method: &str, path: &str, headers: &str, body: Option<&[u8]>) -> Vec<u8> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\n{headers}",
            self.host
        );
        if let Some(body) = body {
            request.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        bytes
    }

    /// Sends `request` and reads its answer whole: whether its status is `expected`. A pooled
    /// connection the server has closed meanwhile (its idle timeout is 75 s, and a ladder
    /// leaves many connections idle after its highest step) is replaced by a new one, once:
    /// the retry never takes another pooled connection, which may have been closed as well.
    pub async fn send(&self, request: &[u8], expected: u16) -> bool {
        for attempt in 0..2 {
            let pooled = if attempt == 0 {
                self.idle.lock().ok().and_then(|mut idle| idle.pop())
            } else {
                None
            };
            let reused = pooled.is_some();
            let mut stream = match pooled {
                Some(stream) => stream,
                None => match TcpStream::connect(self.addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        stream
                    }
                    Err(_) => {
                        crate::unexpected::note("no connection");
                        return false;
                    }
                },
            };
            match exchange(&mut stream, request).await {
                Ok((status, keep_alive)) => {
                    if keep_alive && let Ok(mut idle) = self.idle.lock() {
                        idle.push(stream);
                    }
                    if status != expected {
                        crate::unexpected::note(status.to_string());
                    }
                    return status == expected;
                }
                Err(_) if reused => continue,
                Err(error) => {
                    crate::unexpected::note(format!("no answer (new connection: {error})"));
                    return false;
                }
            }
        }
        false
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes `request`, reads one answer: its status and whether the connection stays open.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<(u16, bool)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    stream.write_all(request).await?;
    let mut buffer = Vec::with_capacity(2048);
    let head_end = loop {
        if stream.read_buf(&mut buffer).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(invalid("answer head too large"));
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| invalid("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let (mut length, mut chunked, mut close) = (None, false, status_line.starts_with("HTTP/1.0"));
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if let Some(length) = length {
        while buffer.len() < head_end + length {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    } else if chunked {
        // Enough for the short answers here: read until the last chunk and the empty trailer.
        while !(buffer.len() >= head_end + 5 && buffer.ends_with(b"0\r\n\r\n")) {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    } else if !(100..200).contains(&status) && status != 204 && status != 304 {
        // Delimited by the end of the connection.
        while stream.read_buf(&mut buffer).await? != 0 {}
        close = true;
    }
    Ok((status, !close))
}
