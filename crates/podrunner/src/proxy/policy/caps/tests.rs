use super::*;
use serde_json::json;

const CAPS: Caps = Caps {
    memory: Some(256 << 20),
    cpus: Some(1.5),
    pids: 512,
};

/// [`rewrite`] of a JSON body, its result parsed back.
fn rewritten(
    schema: Schema,
    body: &Value,
    rules: &Rules,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let out = rewrite_bytes(schema, body.to_string().as_bytes(), rules, resolve).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn open_rules(caps: Caps) -> Rules {
    Rules {
        caps,
        paths: PathMap::default(),
        policy: None,
        pool_hint: String::new(),
        cgroup_parent: None,
    }
}

fn capped_with(schema: Schema, body: Value, caps: Caps) -> Value {
    rewritten(schema, &body, &open_rules(caps), &|p| Some(p.to_string()))
}

fn capped(schema: Schema, body: Value) -> Value {
    capped_with(schema, body, CAPS)
}

#[test]
fn create_without_limits_gets_the_runners() {
    let v = capped(
        Schema::ContainerCreate,
        json!({"Image": "alpine", "Cmd": ["true"]}),
    );
    assert_eq!(
        v,
        json!({"Image": "alpine", "Cmd": ["true"], "HostConfig": {
            "Memory": 268435456, "NanoCpus": 1500000000, "PidsLimit": 512, "OomScoreAdj": 0}})
    );
}

#[test]
fn create_asking_more_is_lowered_and_less_is_kept() {
    let v = capped(
        Schema::ContainerCreate,
        json!({"HostConfig": {"Memory": 1i64 << 34, "MemorySwap": -1, "NanoCpus": 4_000_000_000i64,
               "PidsLimit": -1, "MemoryReservation": 1i64 << 33, "Binds": ["/w:/w"], "OomScoreAdj": -1000}}),
    );
    assert_eq!(
        v["HostConfig"],
        json!({"Memory": 268435456, "MemorySwap": 536870912, "NanoCpus": 1500000000,
               "PidsLimit": 512, "MemoryReservation": 268435456, "Binds": ["/w:/w"], "OomScoreAdj": 0})
    );
    let v = capped(
        Schema::ContainerCreate,
        json!({"HostConfig": {"Memory": 64 << 20, "MemorySwap": 100 << 20, "NanoCpus": 500_000_000, "PidsLimit": 100}}),
    );
    assert_eq!(
        v["HostConfig"],
        json!({"Memory": 67108864, "MemorySwap": 104857600, "NanoCpus": 500000000, "PidsLimit": 100, "OomScoreAdj": 0})
    );
}

#[test]
fn cpu_period_and_quota_are_capped_together() {
    // (asked, CpuQuota, CpuPeriod) for a runner of 1.5 CPUs.
    for (asked, quota, period) in [
        (
            json!({"CpuQuota": 400000, "CpuPeriod": 200000}),
            300000,
            200000,
        ),
        (json!({"CpuQuota": 50000}), 50000, 100000),
        // A period alone would rescale whatever quota there is: both are set.
        (json!({"CpuPeriod": 1000}), 1500, 1000),
        // NanoCpus next to a period: the quota form wins, NanoCpus goes.
        (
            json!({"NanoCpus": 1_500_000_000, "CpuPeriod": 1000}),
            1500,
            1000,
        ),
        // Periods outside the kernel's bounds are held to them.
        (json!({"CpuPeriod": 10, "CpuQuota": 1_000_000}), 1500, 1000),
        (json!({"CpuPeriod": 10_000_000}), 1_500_000, 1_000_000),
    ] {
        let v = capped(
            Schema::ContainerCreate,
            json!({"HostConfig": asked.clone()}),
        );
        let h = &v["HostConfig"];
        assert_eq!(
            (h["CpuQuota"].clone(), h["CpuPeriod"].clone()),
            (json!(quota), json!(period)),
            "{asked}"
        );
        assert!(h.get("NanoCpus").is_none(), "{asked}");
        let v = capped(Schema::ContainerUpdate, asked.clone());
        assert_eq!(
            (v["CpuQuota"].clone(), v["CpuPeriod"].clone()),
            (json!(quota), json!(period)),
            "update {asked}"
        );
    }
}

#[test]
fn swap_never_below_memory() {
    let v = capped(
        Schema::ContainerCreate,
        json!({"HostConfig": {"Memory": 1i64 << 34, "MemorySwap": 200 << 20}}),
    );
    assert_eq!(v["HostConfig"]["Memory"], json!(268435456));
    assert_eq!(v["HostConfig"]["MemorySwap"], json!(268435456));
}

#[test]
fn update_caps_only_what_it_changes() {
    let v = capped(
        Schema::ContainerUpdate,
        json!({"RestartPolicy": {"Name": "no"}}),
    );
    assert_eq!(v, json!({"RestartPolicy": {"Name": "no"}}));
    let v = capped(
        Schema::ContainerUpdate,
        json!({"Memory": 1i64 << 34, "PidsLimit": 0, "NanoCpus": 8_000_000_000i64, "MemorySwap": -1}),
    );
    assert_eq!(
        v,
        json!({"Memory": 268435456, "PidsLimit": 512, "NanoCpus": 1500000000, "MemorySwap": 536870912})
    );
}

#[test]
fn libpod_create_under_open() {
    let rules = open_rules(CAPS);
    let mut m = json!({"image": "alpine"}).as_object().unwrap().clone();
    rewrite_libpod_create(&mut m, &rules);
    assert_eq!(
        Value::Object(m),
        json!({"image": "alpine", "oom_score_adj": 0, "resource_limits": {
            "memory": {"limit": 268435456},
            "cpu": {"quota": 150000, "period": 100000},
            "pids": {"limit": 512}}})
    );
    let mut m = json!({"resource_limits": {"memory": {"limit": 1024}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 9},
                       "unified": {"memory.max": "max", "pids.max": "max"}}})
    .as_object()
    .unwrap()
    .clone();
    rewrite_libpod_create(&mut m, &rules);
    assert_eq!(
        m["resource_limits"],
        json!({"memory": {"limit": 1024}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 9}})
    );
}

#[test]
fn no_cpu_or_memory_cap_leaves_those_alone() {
    let caps = Caps {
        memory: None,
        cpus: None,
        pids: 7,
    };
    let v = capped_with(
        Schema::ContainerCreate,
        json!({"HostConfig": {"Memory": 5}}),
        caps,
    );
    assert_eq!(
        v,
        json!({"HostConfig": {"Memory": 5, "PidsLimit": 7, "OomScoreAdj": 0}})
    );
    let mut t = crate::proxy::request::parse_target("/v1.41/build?t=a").unwrap();
    cap_build_query(&mut t, &caps);
    assert_eq!(t.encode(Some((1, 41))), "/v1.41/build?t=a");
}

#[test]
fn bad_bodies() {
    let r = open_rules(CAPS);
    let same = |p: &str| Some(p.to_string());
    for body in [&b"[1]"[..], b"{", br#"{"a":1,"A":2}"#] {
        assert!(matches!(
            rewrite_bytes(Schema::ContainerCreate, body, &r, &same),
            Err(Rejected::BadBody(_))
        ));
    }
    // A HostConfig that is not an object is replaced, never passed on uncapped.
    let v = capped(Schema::ContainerCreate, json!({"HostConfig": "x"}));
    assert_eq!(v["HostConfig"]["PidsLimit"], json!(512));
}

#[test]
fn bind_sources_inside_the_runner_become_host_paths() {
    let paths = PathMap::parse(&[
        "/var/run/docker.sock=/run/pr/e/k/docker.sock".into(),
        "/home/runner/externals=/var/lib/pr/externals/abc".into(),
        "/home/runner=/nowhere".into(),
    ])
    .unwrap();
    assert_eq!(
        paths.translate("/home/runner/externals/node20"),
        Some("/var/lib/pr/externals/abc/node20".into())
    );
    assert_eq!(
        paths.translate("/home/runner/externalsX"),
        Some("/nowhere/externalsX".into())
    );
    assert_eq!(paths.translate("/var/run/docker.sockX"), None);
    assert_eq!(
        paths.translate("/var/run/docker.sock"),
        Some("/run/pr/e/k/docker.sock".into())
    );
    let rules = Rules {
        paths,
        ..open_rules(Caps {
            memory: None,
            cpus: None,
            pids: 9,
        })
    };
    let body = json!({"HostConfig": {
        "Binds": ["/var/run/docker.sock:/var/run/docker.sock", "/home/runner/externals:/__e:ro",
                  "/w/r-1/_work:/__w", "myvolume:/data"],
        "Mounts": [{"Type": "bind", "Source": "/home/runner/externals/node20", "Target": "/n"},
                   {"Type": "volume", "Source": "/home/runner/externals", "Target": "/v"}]}});
    let same = |p: &str| Some(p.to_string());
    let v = rewritten(Schema::ContainerCreate, &body, &rules, &same);
    assert_eq!(
        v["HostConfig"]["Binds"],
        json!([
            "/run/pr/e/k/docker.sock:/var/run/docker.sock",
            "/var/lib/pr/externals/abc:/__e:ro",
            "/w/r-1/_work:/__w",
            "myvolume:/data"
        ])
    );
    assert_eq!(
        v["HostConfig"]["Mounts"],
        json!([{"Type": "bind", "Source": "/var/lib/pr/externals/abc/node20", "Target": "/n"},
               {"Type": "volume", "Source": "/home/runner/externals", "Target": "/v"}])
    );
    let mut m = json!({"mounts": [{"type": "bind", "source": "/var/run/docker.sock", "destination": "/d"}]})
        .as_object()
        .unwrap()
        .clone();
    rewrite_libpod_create(&mut m, &rules);
    assert_eq!(m["mounts"][0]["source"], json!("/run/pr/e/k/docker.sock"));
    assert!(PathMap::parse(&["relative=/x".into()]).is_err());
    assert!(PathMap::parse(&["/x".into()]).is_err());
}

#[test]
fn contained_policy_checks_after_translation_and_binds_what_it_checked() {
    let rules = Rules {
        caps: CAPS,
        paths: PathMap::parse(&["/var/run/docker.sock=/run/pr/e/k/docker.sock".into()]).unwrap(),
        policy: Some(Policy {
            allowed: vec!["/w/r-1".into(), "/run/pr/e/k/docker.sock".into()],
            ..Policy::default()
        }),
        pool_hint: " in pool ci".into(),
        cgroup_parent: Some("/podrunner.ci/r-1".into()),
    };
    let resolve = |p: &str| Some(p.replace("/w/r-1/link", "/w/r-1/real"));
    let body = json!({"HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock",
                                               "/w/r-1/link/src:/src"]}});
    let v = rewritten(Schema::ContainerCreate, &body, &rules, &resolve);
    assert_eq!(
        v["HostConfig"]["Binds"],
        json!([
            "/run/pr/e/k/docker.sock:/var/run/docker.sock",
            "/w/r-1/real/src:/src"
        ])
    );
    // In the runner's budget, and killed before the runner when it runs out.
    assert_eq!(v["HostConfig"]["CgroupParent"], json!("/podrunner.ci/r-1"));
    assert_eq!(v["HostConfig"]["OomScoreAdj"], json!(JOB_OOM_SCORE_ADJ));
    for (asked, got) in [(-1000, JOB_OOM_SCORE_ADJ), (900, 900)] {
        let body = json!({"HostConfig": {"OomScoreAdj": asked}});
        let v = rewritten(Schema::ContainerCreate, &body, &rules, &resolve);
        assert_eq!(v["HostConfig"]["OomScoreAdj"], json!(got), "{asked}");
        assert_eq!(v["HostConfig"]["CgroupParent"], json!("/podrunner.ci/r-1"));
    }
    // A parent of the job's own is refused (contained); an update cannot move it either.
    let body = json!({"HostConfig": {"CgroupParent": "/elsewhere"}});
    assert!(matches!(
        rewrite_bytes(
            Schema::ContainerCreate,
            body.to_string().as_bytes(),
            &rules,
            &resolve
        ),
        Err(Rejected::Forbidden(_))
    ));
    let open = Rules {
        policy: None,
        ..rules.clone()
    };
    let v = rewritten(
        Schema::ContainerUpdate,
        &json!({"CgroupParent": "/elsewhere", "OomScoreAdj": -5}),
        &open,
        &resolve,
    );
    assert_eq!(
        v,
        json!({"CgroupParent": "/podrunner.ci/r-1", "OomScoreAdj": JOB_OOM_SCORE_ADJ})
    );
    let body = json!({"HostConfig": {"Privileged": true}});
    match rewrite_bytes(Schema::ContainerCreate, body.to_string().as_bytes(), &rules, &resolve) {
        Err(Rejected::Forbidden(why)) => assert_eq!(why.to_string(),
            "podrunner: HostConfig.Privileged = true (only its empty value is allowed) is refused: the runner's engine keeps job containers contained (docker_policy = \"contained\"). If this pool's jobs are trusted with the host, set docker_policy = \"open\" in pool ci"
        ),
        other => panic!("{other:?}"),
    }
    let exec = json!({"Cmd": ["sh"], "Privileged": true});
    assert!(matches!(
        rewrite_bytes(
            Schema::ExecCreate,
            exec.to_string().as_bytes(),
            &rules,
            &resolve
        ),
        Err(Rejected::Forbidden(_))
    ));
}

#[test]
fn build_query() {
    let capped = |t: &str| {
        let mut t = crate::proxy::request::parse_target(t).unwrap();
        cap_build_query(&mut t, &CAPS);
        t.encode(t.version)
    };
    assert_eq!(
        capped("/v1.41/build?t=img&memory=0&cpuquota=900000"),
        "/v1.41/build?t=img&memory=268435456&cpuquota=150000&memswap=536870912&cpuperiod=100000"
    );
    assert_eq!(
        capped("/build?memory=1024&memswap=2048&cpuquota=1000&cpuperiod=10000"),
        "/build?memory=1024&memswap=2048&cpuquota=1000&cpuperiod=10000"
    );
    assert_eq!(
        capped("/build?cpuperiod=1"),
        "/build?cpuperiod=1000&memory=268435456&memswap=536870912&cpuquota=1500"
    );
}
