//! The build context of `POST /build`, checked as it streams through (docs/docker.md, "The
//! proxy's boundary"). Podman unpacks the context into a folder on the host and its builder
//! resolves `RUN --mount=type=bind,source=PATH` there: a context holding a symlink `x -> /`
//! and a Dockerfile with `RUN --mount=type=bind,source=x,target=/host` showed a build step the
//! host's root (measured on Podman 4.3.1). So under the contained policy a context may hold no
//! link that points outside it (absolute, or climbing above its root), no device node, and a
//! Dockerfile without `--mount`. A refused context is never completed: the engine gets a
//! truncated body and builds nothing.
//!
//! Only plain tar is read (what the Docker CLI sends; `docker build --compress` is refused).

use super::refusal::{why, Refused};

/// Largest Dockerfile the proxy reads.
const MAX_DOCKERFILE: usize = 1 << 20;
/// Largest GNU long-name or PAX header read.
const MAX_META: usize = 64 << 10;
const BLOCK: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    Skip,
    LongName,
    LongLink,
    Pax,
    Dockerfile,
}

/// A streaming check of a tar build context.
#[derive(Debug)]
pub struct TarCheck {
    dockerfile: String,
    header: Vec<u8>,
    /// Data bytes (with padding) left of the current entry, and what they are.
    left: u64,
    size: u64,
    data: Data,
    captured: Vec<u8>,
    long_name: Option<String>,
    long_link: Option<String>,
    pax_path: Option<String>,
    pax_link: Option<String>,
    ended: bool,
    first: bool,
}

fn field(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn octal(b: &[u8]) -> Option<u64> {
    if b.first().is_some_and(|c| c & 0x80 != 0) {
        // GNU base-256.
        let mut n: u64 = u64::from(b[0] & 0x7f);
        for &c in &b[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(c))?;
        }
        return Some(n);
    }
    let s = field(b);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// `a/b/../c` → `a/c`; `None` when it climbs above the root.
fn normal(path: &str) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    Some(out)
}

fn entry_name(s: &str) -> String {
    normal(s).map(|p| p.join("/")).unwrap_or_default()
}

impl TarCheck {
    /// For a build whose Dockerfile is `dockerfile` (the `dockerfile` query parameter, or
    /// `None` for the default).
    pub fn new(dockerfile: Option<&str>) -> TarCheck {
        TarCheck {
            dockerfile: entry_name(dockerfile.unwrap_or("Dockerfile")),
            header: Vec::with_capacity(BLOCK),
            left: 0,
            size: 0,
            data: Data::Skip,
            captured: Vec::new(),
            long_name: None,
            long_link: None,
            pax_path: None,
            pax_link: None,
            ended: false,
            first: true,
        }
    }

    /// Feeds the next bytes of the context; the error is why it is refused.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Refused> {
        while !bytes.is_empty() && !self.ended {
            if self.left > 0 {
                let k = (self.left as usize).min(bytes.len());
                let consumed = self.size.saturating_sub(self.captured.len() as u64) as usize;
                if self.data != Data::Skip {
                    let take = k.min(consumed);
                    let limit = if self.data == Data::Dockerfile {
                        MAX_DOCKERFILE
                    } else {
                        MAX_META
                    };
                    if self.captured.len() + take > limit {
                        return Err(Refused::BuildContext(
                            "a Dockerfile or tar header in the build context too large to check"
                                .into(),
                        ));
                    }
                    self.captured.extend_from_slice(&bytes[..take]);
                }
                self.left -= k as u64;
                bytes = &bytes[k..];
                if self.left == 0 {
                    self.entry_done()?;
                }
                continue;
            }
            let k = (BLOCK - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..k]);
            bytes = &bytes[k..];
            if self.header.len() == BLOCK {
                let h = std::mem::take(&mut self.header);
                self.header_block(&h)?;
            }
        }
        Ok(())
    }

    fn header_block(&mut self, h: &[u8]) -> Result<(), Refused> {
        if self.first {
            self.first = false;
            if h.starts_with(&[0x1f, 0x8b])
                || h.starts_with(b"BZh")
                || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
            {
                return Err(Refused::BuildContext(
                    "a compressed build context (docker build --compress)".into(),
                ));
            }
        }
        if h.iter().all(|&b| b == 0) {
            self.ended = true;
            return Ok(());
        }
        let size = octal(&h[124..136]).ok_or_else(|| {
            Refused::BuildContext("a tar header with a bad size in the build context".into())
        })?;
        let kind = h[156];
        let mut name = field(&h[0..100]);
        if &h[257..262] == b"ustar" {
            let prefix = field(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let name = self
            .pax_path
            .take()
            .or(self.long_name.take())
            .unwrap_or(name);
        let link = self
            .pax_link
            .take()
            .or(self.long_link.take())
            .unwrap_or_else(|| field(&h[157..257]));
        self.size = size;
        self.left = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.captured.clear();
        self.data = match kind {
            b'L' => Data::LongName,
            b'K' => Data::LongLink,
            b'x' | b'g' => Data::Pax,
            b'1' | b'2' => {
                let base = if kind == b'2' {
                    // A symlink resolves from its own folder.
                    let n = normal(&name).unwrap_or_default();
                    n[..n.len().saturating_sub(1)].join("/")
                } else {
                    String::new()
                };
                if link.starts_with('/') || normal(&format!("{base}/{link}")).is_none() {
                    return Err(Refused::BuildContext(why!(
                        "the link {name} -> {link} in the build context (it points outside the context, where the builder would follow it on the host)"
                    )));
                }
                Data::Skip
            }
            b'3' | b'4' => {
                return Err(Refused::BuildContext(why!(
                    "the device node {name} in the build context"
                )));
            }
            b'0' | 0 | b'7' if entry_name(&name) == self.dockerfile => Data::Dockerfile,
            _ => Data::Skip,
        };
        if self.left == 0 {
            self.entry_done()?;
        }
        Ok(())
    }

    fn entry_done(&mut self) -> Result<(), Refused> {
        let text = String::from_utf8_lossy(&self.captured).into_owned();
        match self.data {
            Data::LongName => self.long_name = Some(text.trim_end_matches('\0').to_string()),
            Data::LongLink => self.long_link = Some(text.trim_end_matches('\0').to_string()),
            Data::Pax => {
                for rec in text.split('\n') {
                    let kv = rec.split_once(' ').map_or(rec, |(_, kv)| kv);
                    if let Some(v) = kv.strip_prefix("path=") {
                        self.pax_path = Some(v.to_string());
                    } else if let Some(v) = kv.strip_prefix("linkpath=") {
                        self.pax_link = Some(v.to_string());
                    }
                }
            }
            Data::Dockerfile if text.to_ascii_lowercase().contains("--mount") => {
                return Err(Refused::BuildContext(why!(
                    "RUN --mount in the Dockerfile {} (the builder resolves bind and cache mounts on the host)",
                    self.dockerfile
                )));
            }
            _ => {}
        }
        self.captured.clear();
        self.data = Data::Skip;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, link: &str, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let s = format!("{size:011o}");
        h[124..135].copy_from_slice(s.as_bytes());
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn file(name: &str, content: &str) -> Vec<u8> {
        let mut v = header(name, b'0', "", content.len());
        v.extend_from_slice(content.as_bytes());
        v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    fn check(parts: &[Vec<u8>], dockerfile: Option<&str>, piece: usize) -> Result<(), Refused> {
        let mut all: Vec<u8> = parts.concat();
        all.extend_from_slice(&[0u8; 1024]);
        let mut c = TarCheck::new(dockerfile);
        for p in all.chunks(piece) {
            c.feed(p)?;
        }
        Ok(())
    }

    #[test]
    fn ordinary_contexts_pass() {
        let ctx = [
            file("Dockerfile", "FROM x\nCOPY a /a\nRUN echo hi\n"),
            file("src/a.txt", &"x".repeat(3000)),
            header("src/link", b'2', "a.txt", 0),
            header("src/up", b'2', "../src/a.txt", 0),
            header("hard", b'1', "src/a.txt", 0),
        ];
        for piece in [1, 7, 512, 4096] {
            assert_eq!(check(&ctx, None, piece), Ok(()), "{piece}");
        }
    }

    #[test]
    fn escapes_are_refused() {
        for (parts, dockerfile, why) in [
            (
                vec![header("rootlink", b'2', "/", 0)],
                None,
                "the link rootlink -> /",
            ),
            (
                vec![header("a/b", b'2', "../../etc", 0)],
                None,
                "the link a/b -> ../../etc",
            ),
            (
                vec![header("h", b'1', "../x", 0)],
                None,
                "the link h -> ../x",
            ),
            (
                vec![header("sda", b'4', "", 0)],
                None,
                "the device node sda",
            ),
            (
                vec![file(
                    "Dockerfile",
                    "FROM x\nRUN --mount=type=bind,source=l,target=/h cat /h/x\n",
                )],
                None,
                "RUN --mount",
            ),
            (
                vec![file(
                    "sub/Build.df",
                    "FROM x\nRUN \\\n  --MOUNT=type=cache,target=/c true\n",
                )],
                Some("./sub/Build.df"),
                "RUN --mount",
            ),
        ] {
            for piece in [3, 512, 10_000] {
                let err = check(&parts, dockerfile, piece).unwrap_err();
                assert!(err.to_string().contains(why), "{why}: {err}");
            }
        }
        // GNU long names and PAX paths name the entry that follows.
        let mut long = header("././@LongLink", b'K', "", 4);
        long.extend_from_slice(b"/etc");
        long.resize(1024, 0);
        let err = check(&[long, header("x", b'2', "short", 0)], None, 100).unwrap_err();
        assert!(err.to_string().contains("x -> /etc"), "{err}");
        let rec = "17 linkpath=/etc\n";
        let mut pax = header("PaxHeader", b'x', "", rec.len());
        pax.extend_from_slice(rec.as_bytes());
        pax.resize(1024, 0);
        let err = check(&[pax, header("y", b'2', "short", 0)], None, 100).unwrap_err();
        assert!(err.to_string().contains("y -> /etc"), "{err}");
        let gz = vec![0x1f, 0x8b, 8, 0];
        assert!(check(&[gz], None, 512)
            .unwrap_err()
            .to_string()
            .contains("compressed"));
    }
}
