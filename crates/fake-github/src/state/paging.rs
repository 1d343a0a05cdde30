//! Pagination as GitHub's list endpoints do it: `per_page` and `page` as GitHub reads them,
//! the page window, the `Link` header, and query-string coding.

/// GitHub's default page size for list endpoints.
pub const DEFAULT_PER_PAGE: u64 = 30;
/// GitHub's largest accepted `per_page` (docs/github-runner.md: "per_page (max 100)").
pub const MAX_PER_PAGE: u64 = 100;

/// `per_page` as GitHub reads it: missing, unparsable or 0 → 30; above 100 → 100.
pub fn effective_per_page(raw: Option<&str>) -> u64 {
    match raw.and_then(|s| s.trim().parse::<u64>().ok()) {
        None | Some(0) => DEFAULT_PER_PAGE,
        Some(n) => n.min(MAX_PER_PAGE),
    }
}

/// `page` as GitHub reads it: 1-based; missing, unparsable or 0 → 1.
pub fn effective_page(raw: Option<&str>) -> u64 {
    match raw.and_then(|s| s.trim().parse::<u64>().ok()) {
        None | Some(0) => 1,
        Some(n) => n,
    }
}

/// One page of a list: the index range of its items and the number of the last page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageWindow {
    pub start: usize,
    pub end: usize,
    /// At least 1, also for an empty list.
    pub last_page: u64,
}

/// The slice of `total` items that page `page` (1-based) of size `per_page` shows.
pub fn page_window(total: usize, per_page: u64, page: u64) -> PageWindow {
    let per_page = per_page.max(1);
    let last_page = (total as u64).div_ceil(per_page).max(1);
    let start = ((page.max(1) - 1).saturating_mul(per_page)).min(total as u64) as usize;
    let end = (start as u64 + per_page).min(total as u64) as usize;
    PageWindow {
        start,
        end,
        last_page,
    }
}

/// GitHub's `Link` header for page `page` of `last_page`, or `None` when there is one page
/// and it is the one asked for. `url` is the absolute URL without query; `query` are the
/// request's query pairs (their order is kept, `page` is dropped and appended anew).
/// Relations come in GitHub's order: `prev`, `next`, `last`, `first`.
pub fn link_header(
    url: &str,
    query: &[(String, String)],
    page: u64,
    last_page: u64,
) -> Option<String> {
    if page <= 1 && last_page <= 1 {
        return None;
    }
    let base: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
        .collect();
    let link = |p: u64, rel: &str| {
        let mut parts = base.clone();
        parts.push(format!("page={p}"));
        format!("<{url}?{}>; rel=\"{rel}\"", parts.join("&"))
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(link(page - 1, "prev"));
    }
    if page < last_page {
        rels.push(link(page + 1, "next"));
        rels.push(link(last_page, "last"));
    }
    if page > 1 {
        rels.push(link(1, "first"));
    }
    Some(rels.join(", "))
}

/// Percent-encodes a query key or value (RFC 3986 unreserved characters stay).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` query text into ordered pairs.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query(k), decode_query(v))
        })
        .collect()
}

fn decode_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn per_page_and_page_defaults_and_caps() {
        let cases = [
            (None, 30),
            (Some("0"), 30),
            (Some("x"), 30),
            (Some("1"), 1),
            (Some("100"), 100),
            (Some("101"), 100),
            (Some("5000"), 100),
        ];
        for (raw, want) in cases {
            assert_eq!(effective_per_page(raw), want, "per_page {raw:?}");
        }
        for (raw, want) in [(None, 1), (Some("0"), 1), (Some("-2"), 1), (Some("3"), 3)] {
            assert_eq!(effective_page(raw), want, "page {raw:?}");
        }
    }

    #[test]
    fn page_window_math() {
        // (total, per_page, page) -> (start, end, last_page)
        let cases = [
            ((0, 30, 1), (0, 0, 1)),
            ((1, 30, 1), (0, 1, 1)),
            ((30, 30, 1), (0, 30, 1)),
            ((31, 30, 1), (0, 30, 2)),
            ((31, 30, 2), (30, 31, 2)),
            ((31, 30, 3), (31, 31, 2)),
            ((250, 100, 3), (200, 250, 3)),
            ((5, 2, 2), (2, 4, 3)),
            ((5, 2, 0), (0, 2, 3)),
        ];
        for ((total, per, page), (start, end, last)) in cases {
            assert_eq!(
                page_window(total, per, page),
                PageWindow {
                    start,
                    end,
                    last_page: last
                },
                "total={total} per_page={per} page={page}"
            );
        }
    }

    #[test]
    fn link_header_like_github() {
        let url = "http://127.0.0.1:9/repos/o/r/actions/runners";
        assert_eq!(link_header(url, &q(&[("per_page", "2")]), 1, 1), None);
        assert_eq!(
            link_header(url, &q(&[("per_page", "2")]), 1, 3).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=2>; rel=\"next\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"last\""
        );
        assert_eq!(
            link_header(url, &q(&[("per_page", "2"), ("page", "2")]), 2, 3).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"prev\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"next\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"last\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"first\""
        );
        assert_eq!(
            link_header(url, &q(&[("page", "3"), ("per_page", "2")]), 3, 3).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=2>; rel=\"prev\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"first\""
        );
        // Other parameters are kept (encoded), with no per_page the link has none either.
        assert_eq!(
            link_header(url, &q(&[("name", "a b")]), 1, 2).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?name=a%20b&page=2>; rel=\"next\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?name=a%20b&page=2>; rel=\"last\""
        );
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_query(Some("per_page=5&name=a%2Fb+c&page=&flag")),
            q(&[
                ("per_page", "5"),
                ("name", "a/b c"),
                ("page", ""),
                ("flag", "")
            ])
        );
        assert_eq!(parse_query(Some("x=%zz%4")), q(&[("x", "%zz%4")]));
        assert_eq!(parse_query(None), vec![]);
    }
}
