//! HTTP/1.1 as the proxy speaks it: reading a client's request head and body in bounded
//! pieces, its framing, the proxy's own short answers, and reading the engine's answers.

use super::policy::{tar, version};
use super::MAX_HEAD;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Largest answer the proxy reads whole from the engine (a start's, `/version`, an inspect).
pub(super) const MAX_ENGINE_ANSWER: usize = 4 << 20;
/// After refusing a request whose body is not read (or refused mid-stream), how much more of it
/// the proxy reads and drops, and for how long, so that the client reads the refusal (a client
/// still writing an archive or a build context would otherwise only see a broken pipe).
pub(super) const DRAIN_LIMIT: u64 = 1 << 30;
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the pieces a stream is passed on in.
pub(super) const PIECE: usize = 64 << 10;

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A short answer of the proxy's own, in the engine's error shape (`{"message": ...}`), which
/// the Docker CLI prints as "Error response from daemon: ...".
pub(super) async fn answer(c: &mut UnixStream, status: &str, message: &str) -> std::io::Result<()> {
    let body = serde_json::json!({ "message": message }).to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        version::text(version::ADVERTISED),
        body.len()
    );
    c.write_all(head.as_bytes()).await?;
    c.write_all(body.as_bytes()).await?;
    c.shutdown().await
}

/// Bytes read from the client so far and the stream, for reading a body after the head.
pub(super) struct Incoming {
    pub(super) stream: UnixStream,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
}

impl Incoming {
    /// Answers a request whose body the proxy has not read (or not all of it), then reads and
    /// drops the rest for a bounded time: a client still writing its body (a `docker cp`
    /// archive, a build context) then reads the answer instead of failing on a closed
    /// connection with a broken pipe.
    pub(super) async fn answer_unread(
        &mut self,
        framing: Framing,
        status: &str,
        message: &str,
    ) -> std::io::Result<()> {
        answer(&mut self.stream, status, message).await?;
        if framing != Framing::None {
            let mut sink = tokio::io::sink();
            let mut rest = (&mut self.stream).take(DRAIN_LIMIT);
            let _ =
                tokio::time::timeout(DRAIN_TIMEOUT, tokio::io::copy(&mut rest, &mut sink)).await;
        }
        Ok(())
    }

    pub(super) async fn more(&mut self) -> std::io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = vec![0u8; PIECE];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
    pub(super) fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(super) async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buffered() < n {
            self.more().await?;
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }
    pub(super) async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(l);
            }
            if self.buffered() > 4096 {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            self.more().await?;
        }
    }
    /// The size of the next chunk of a chunked body (extensions dropped).
    pub(super) async fn chunk_size(&mut self) -> std::io::Result<usize> {
        let line = self.line().await?;
        let size = line.split(';').next().unwrap_or("").trim();
        if size.is_empty() || size.len() > 15 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
    }
    pub(super) async fn crlf(&mut self) -> std::io::Result<()> {
        if self.take(2).await? != b"\r\n" {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        Ok(())
    }
    /// A whole body, decoded, of at most `limit` bytes (`None` when larger).
    pub(super) async fn whole(
        &mut self,
        framing: Framing,
        limit: usize,
    ) -> std::io::Result<Option<Vec<u8>>> {
        match framing {
            Framing::None => Ok(Some(Vec::new())),
            Framing::Length(n) if n > limit => Ok(None),
            Framing::Length(n) => self.take(n).await.map(Some),
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let size = self.chunk_size().await?;
                    if size == 0 {
                        while !self.line().await?.is_empty() {}
                        return Ok(Some(body));
                    }
                    if body.len() + size > limit {
                        return Ok(None);
                    }
                    body.extend(self.take(size).await?);
                    self.crlf().await?;
                }
            }
        }
    }
    /// Copies `n` bytes of the body to `up` in pieces, each checked first.
    pub(super) async fn copy(
        &mut self,
        mut n: usize,
        up: &mut UnixStream,
        check: &mut Option<tar::TarCheck>,
    ) -> std::io::Result<()> {
        while n > 0 {
            if self.buffered() == 0 {
                self.more().await?;
            }
            let k = n.min(self.buffered());
            if let Some(c) = check {
                c.feed(&self.buf[self.pos..self.pos + k]).map_err(|why| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
                })?;
            }
            up.write_all(&self.buf[self.pos..self.pos + k]).await?;
            self.pos += k;
            n -= k;
        }
        Ok(())
    }
    /// Passes a streamed body on in its framing, chunk by chunk (trailers dropped), checked
    /// by `check` if any: a refusal is an error of kind `PermissionDenied` saying why.
    pub(super) async fn pump(
        &mut self,
        framing: Framing,
        up: &mut UnixStream,
        check: &mut Option<tar::TarCheck>,
    ) -> std::io::Result<()> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => self.copy(n, up, check).await,
            Framing::Chunked => loop {
                let size = self.chunk_size().await?;
                up.write_all(format!("{size:x}\r\n").as_bytes()).await?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    return up.write_all(b"\r\n").await;
                }
                self.copy(size, up, check).await?;
                self.crlf().await?;
                up.write_all(b"\r\n").await?;
            },
        }
    }
}

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// A request head the proxy accepts.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    /// `Connection: Upgrade` with an `Upgrade` header.
    pub wants_upgrade: bool,
}

/// Reads a request head; the error is a status and why.
pub fn parse_head(raw: &[u8]) -> Result<Head, (&'static str, String)> {
    let bad = |why: &str| ("400 Bad Request", format!("podrunner: {why}"));
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let (Ok(httparse::Status::Complete(_)), Some(method), Some(target)) =
        (req.parse(raw), req.method, req.path)
    else {
        return Err(bad("malformed request"));
    };
    let mut framing = Framing::None;
    let (mut lengths, mut chunked) = (0, false);
    let mut upgrade_header = false;
    let mut connection_upgrade = false;
    let mut kept = Vec::new();
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                lengths += 1;
                let ok = !value.is_empty()
                    && value.len() <= 18
                    && value.bytes().all(|b| b.is_ascii_digit());
                let n = value.parse().ok().filter(|_| ok);
                framing = Framing::Length(n.ok_or_else(|| bad("a bad Content-Length"))?);
            }
            "transfer-encoding" => {
                if value != "chunked" || chunked {
                    return Err(bad("a Transfer-Encoding other than one \"chunked\""));
                }
                chunked = true;
            }
            "connection" => {
                connection_upgrade |= value.split(',').any(|t| t.trim() == "upgrade");
            }
            "upgrade" => upgrade_header = true,
            "keep-alive" | "proxy-connection" | "te" | "trailer" | "expect" => {}
            _ => kept.push((h.name.to_string(), h.value.to_vec())),
        }
    }
    if lengths > 1 || (lengths == 1 && chunked) {
        return Err(bad(
            "more than one body length (Content-Length twice, or with Transfer-Encoding)",
        ));
    }
    if chunked {
        framing = Framing::Chunked;
    }
    if framing == Framing::Length(0) {
        framing = Framing::None;
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers: kept,
        framing,
        wants_upgrade: upgrade_header && connection_upgrade,
    })
}

/// A response head with the engine's `Api-Version` header replaced by the proxy's.
pub(super) fn client_head(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        if line.to_ascii_lowercase().starts_with("api-version:") {
            out.push_str(&format!(
                "Api-Version: {}\r\n",
                version::text(version::ADVERTISED)
            ));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// Reads a response head from the engine: the head and what came after it.
pub(super) async fn response_head(up: &mut UnixStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    response_head_after(up, Vec::new()).await
}

/// [`response_head`] when the answer's first bytes were read already (`buf`).
pub(super) async fn response_head_after(
    up: &mut UnixStream,
    mut buf: Vec<u8>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let mut chunk = vec![0u8; PIECE];
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The whole answer the engine ends by closing the connection (`Connection: close`).
pub(super) async fn whole_answer(up: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    up.take(MAX_ENGINE_ANSWER as u64)
        .read_to_end(&mut got)
        .await?;
    Ok(got)
}

/// The whole answer the engine ends by closing the connection, when it is at most `limit`
/// bytes: `Ok`; else `Err` with what was read (the rest is still to come).
pub(super) async fn bounded_answer(
    up: &mut UnixStream,
    limit: usize,
) -> std::io::Result<Result<Vec<u8>, Vec<u8>>> {
    let mut got = Vec::new();
    up.take(limit as u64 + 1).read_to_end(&mut got).await?;
    Ok(if got.len() > limit { Err(got) } else { Ok(got) })
}

/// The rest of an answer whose head and first bytes were read, by its framing: the engine
/// keeps a connection that asked for an upgrade open after an answer that is not a `101`.
pub(super) async fn framed_answer(
    up: &mut UnixStream,
    head: Vec<u8>,
    mut rest: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = text.contains("transfer-encoding: chunked");
    let no_body = [" 204 ", " 304 "]
        .iter()
        .any(|c| text.starts_with(&format!("http/1.1{c}")));
    loop {
        let done = match (length, chunked) {
            _ if no_body => true,
            (Some(n), _) => rest.len() >= n,
            (None, true) => rest.ends_with(b"0\r\n\r\n"),
            (None, false) => false,
        };
        if done || rest.len() > MAX_ENGINE_ANSWER {
            break;
        }
        let mut chunk = vec![0u8; PIECE];
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    let mut whole = head;
    whole.extend(rest);
    Ok(whole)
}

/// The status and decoded body of a whole answer.
pub fn split_answer(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = resp.parse(raw).ok()? else {
        return None;
    };
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let mut rest = &raw[n..];
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let i = find(rest, b"\r\n")?;
            let size = std::str::from_utf8(&rest[..i])
                .ok()?
                .split(';')
                .next()?
                .trim()
                .to_string();
            let size = usize::from_str_radix(&size, 16).ok()?;
            rest = &rest[i + 2..];
            if size == 0 {
                break body;
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    } else {
        rest.to_vec()
    };
    Some((resp.code?, body))
}

/// A whole answer of the engine rebuilt for the client: its status line and headers (the
/// version replaced, framing recomputed) and `body`.
pub(super) fn rebuilt_answer(raw: &[u8], body: &[u8]) -> Vec<u8> {
    let end = find(raw, b"\r\n\r\n").map_or(raw.len(), |i| i + 2);
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&client_head(&raw[..end])).split_inclusive("\r\n") {
        let l = line.to_ascii_lowercase();
        if l.starts_with("content-length:") || l.starts_with("transfer-encoding:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads the request head: `None` when the client left before sending one.
pub(super) async fn read_head(inc: &mut Incoming) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = find(&inc.buf, b"\r\n\r\n") {
            if i + 4 > MAX_HEAD {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            return Ok(Some(i + 4));
        }
        if inc.buf.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        match inc.more().await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}
