use super::*;

fn segs(t: &str) -> Vec<String> {
    parse_target(t).unwrap().segments
}

#[test]
fn targets() {
    let t = parse_target("/v1.44/containers/abc/start?detachKeys=ctrl-p%2Cq").unwrap();
    assert_eq!(t.version, Some((1, 44)));
    assert_eq!(t.segments, ["containers", "abc", "start"]);
    assert_eq!(t.query, [("detachKeys".into(), "ctrl-p,q".into())]);
    assert_eq!(
        t.encode(Some((1, 41))),
        "/v1.41/containers/abc/start?detachKeys=ctrl-p%2Cq"
    );
    assert_eq!(parse_target("/_ping").unwrap().version, None);
    let t = parse_target("/v4.3.1/libpod/containers/json").unwrap();
    assert_eq!(
        (t.version, t.libpod_version.as_deref()),
        (None, Some("4.3.1"))
    );
    assert!(t.is_libpod());
    assert_eq!(t.encode(None), "/v4.3.1/libpod/containers/json");
    assert_eq!(
        segs("/images/localhost/x:1/json"),
        ["images", "localhost", "x:1", "json"]
    );
    assert_eq!(segs("/v1.41/containers/json/"), ["containers", "json"]);
    let t = parse_target("/build?%74=a+b&t=c&memory=1").unwrap();
    assert_eq!(
        t.query,
        [
            ("t".into(), "a b".into()),
            ("t".into(), "c".into()),
            ("memory".into(), "1".into())
        ]
    );
    assert_eq!(t.encode(None), "/build?t=a+b&t=c&memory=1");
    for (bad, why) in [
        ("http://d/v1.41/containers/create", "origin-form"),
        ("*", "origin-form"),
        ("/v1.41.0-x/containers/create", "not /vMAJOR.MINOR"),
        ("/v1.41.0/containers/create", "not /vMAJOR.MINOR"),
        ("/v4.3.1-x/libpod/containers/create", "not /vMAJOR.MINOR"),
        ("/v1.41-x/containers/create", "not /vMAJOR.MINOR"),
        ("/v1/containers/create", "not /vMAJOR.MINOR"),
        ("/v1.41/containers/../create", "\"..\""),
        ("/v1.41//containers/create", "\"\""),
        ("/v1.41/containers/%63reate", "\"%63reate\""),
        ("/v1.41/containers/create#x", "fragment"),
        ("/build?t=%zz", "bad escape"),
        ("/build?t=a;memory=0", "';'"),
    ] {
        let err = parse_target(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
}

#[test]
fn routes_are_an_allowlist() {
    let find_p = |m: &str, t: &str| find(m, &segs(t)).map(|s| s.path);
    assert_eq!(
        find_p("POST", "/v1.44/containers/create"),
        Some("containers/create")
    );
    assert_eq!(
        find_p("POST", "/containers/create/start"),
        Some("containers/{}/start")
    );
    assert_eq!(find_p("GET", "/images/json"), Some("images/json"));
    assert_eq!(find_p("GET", "/images/json/json"), Some("images/{*}/json"));
    assert_eq!(find_p("GET", "/images/a/b:c/json"), Some("images/{*}/json"));
    assert_eq!(find_p("DELETE", "/images/a/b:c"), Some("images/{*}"));
    assert_eq!(find_p("POST", "/exec/e/start"), Some("exec/{}/start"));
    for (m, t) in [
        ("POST", "/v4.3.1/libpod/containers/create"),
        ("GET", "/containers/x/attach/ws"),
        ("POST", "/secrets/create"),
        ("POST", "/plugins/pull"),
        ("POST", "/session"),
        ("POST", "/grpc"),
        ("GET", "/containers/create"),
        ("PATCH", "/containers/x"),
        ("POST", "/swarm/init"),
    ] {
        let segs = match parse_target(t) {
            Ok(x) => x.segments,
            Err(_) => continue,
        };
        assert_eq!(find(m, &segs), None, "{m} {t}");
    }
}

#[test]
fn query_names() {
    let build = find("POST", &segs("/build")).unwrap();
    let ok = parse_target("/build?t=a&t=b&dockerfile=D&memory=1").unwrap();
    assert_eq!(check_query(build, &ok), Ok(()));
    for (q, why) in [
        ("/build?secrets=x", "\"secrets\""),
        ("/build?T=a", "\"T\""),
        ("/build?memory=1&memory=2", "given twice"),
        ("/build?%72usagelogfile=/etc/x", "\"rusagelogfile\""),
        ("/build?volume=/etc:/e", "\"volume\""),
    ] {
        let err = check_query(build, &parse_target(q).unwrap()).unwrap_err();
        assert!(err.to_string().contains(why), "{q}: {err}");
    }
}
