use super::*;
use serde_json::json;

fn policy() -> Policy {
    Policy {
        allowed: vec![
            "/w/r-1".into(),
            "/run/pr/e/k/docker.sock".into(),
            "/s/externals/abc".into(),
        ],
        read_only: vec!["/s/externals/abc".into()],
    }
}

/// A host where `/w/r-1/link` is a symlink to /etc, `..` leads to /etc, `/w/r-1/missing` does
/// not exist, and everything else is what it says.
fn resolve(p: &str) -> Option<String> {
    if p.contains("..") {
        return Some("/etc".into());
    }
    if p.contains("missing") {
        return None;
    }
    Some(p.replace("/w/r-1/link", "/etc"))
}

/// What Docker CLI 28 sends for `docker create --name ctr --label a=b --network net1
/// --network-alias alias1 -p 8080:80 -v /w:/w --workdir /w --entrypoint tail -e HOME=/github/home
/// alpine -f /dev/null` at API 1.44 (captured), with the bind moved into the work folder.
fn cli_create() -> Map<String, Value> {
    let text =
        include_str!("docker-cli-28-create.json").replace("\"/w:/w\"", "\"/w/r-1/_work:/w\"");
    serde_json::from_str(&text).unwrap()
}

fn create_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<(), Refused> {
    let mut body = cli_create();
    edit(&mut body);
    policy().check_docker_create(&body, &resolve)
}

fn host_config(key: &str, v: Value) -> Result<(), Refused> {
    create_with(|b| {
        b["HostConfig"]
            .as_object_mut()
            .unwrap()
            .insert(key.into(), v);
    })
}

#[test]
fn what_clients_send_passes() {
    assert_eq!(create_with(|_| {}), Ok(()));
    assert_eq!(policy().check_docker_create(&Map::new(), &resolve), Ok(()));
    for (k, v) in [
        (
            "Binds",
            json!([
                "/w/r-1:/w/r-1",
                "/w/r-1/_work/x:/src:ro,z",
                "cache:/cache",
                "/run/pr/e/k/docker.sock:/var/run/docker.sock"
            ]),
        ),
        ("NetworkMode", json!("host")),
        ("NetworkMode", json!("container:abc")),
        ("NetworkMode", json!("my-net_1")),
        ("CapAdd", json!(["NET_ADMIN", "cap_sys_ptrace"])),
        ("PidMode", json!("container:abc")),
        ("SecurityOpt", json!(["no-new-privileges"])),
        ("Tmpfs", json!({"/run": "size=64m,noexec"})),
        (
            "LogConfig",
            json!({"Type": "json-file", "Config": {"max-size": "10m"}}),
        ),
        ("Sysctls", json!({"net.ipv4.ip_forward": "1"})),
        (
            "Mounts",
            json!([{"Type": "bind", "Source": "/w/r-1/a", "Target": "/a", "ReadOnly": true,
                           "BindOptions": {"Propagation": "rprivate"}},
                          {"Type": "volume", "Source": "data", "Target": "/d",
                           "VolumeOptions": {"NoCopy": true, "DriverConfig": {"Name": "local"}}},
                          {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1000}}]),
        ),
    ] {
        assert_eq!(host_config(k, v.clone()), Ok(()), "{k} {v}");
    }
}

#[test]
fn what_reaches_the_host_is_refused() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("Privileged", json!(true), "HostConfig.Privileged = true"),
        (
            "Binds",
            json!(["/:/host"]),
            "a bind mount of the host path /",
        ),
        (
            "Binds",
            json!(["/w/r-10:/x"]),
            "a bind mount of the host path /w/r-10",
        ),
        (
            "Binds",
            json!(["/w/r-1/../../etc:/x"]),
            "a bind mount of the host path /w/r-1/../../etc",
        ),
        (
            "Binds",
            json!(["/w/r-1/link:/x"]),
            "a bind mount of the host path /w/r-1/link",
        ),
        (
            "Binds",
            json!(["/w/r-1/missing:/x"]),
            "a bind mount of the host path /w/r-1/missing",
        ),
        (
            "Binds",
            json!(["./etc:/x"]),
            "a bind source must be an absolute path",
        ),
        (
            "Binds",
            json!(["../x:/x"]),
            "a bind source must be an absolute path",
        ),
        ("Binds", json!(["/w/r-1:/x:U"]), "the option \"U\""),
        ("Binds", json!(["/w/r-1:/x:O"]), "the option \"O\""),
        (
            "Binds",
            json!(["/w/r-1:/x:rshared"]),
            "the option \"rshared\"",
        ),
        (
            "Binds",
            json!(["/w/r-1:/x:ro:extra"]),
            "expected SOURCE:TARGET",
        ),
        (
            "Mounts",
            json!([{"Type": "bind", "Source": "/home/u", "Target": "/h"}]),
            "a bind mount of the host path /home/u",
        ),
        (
            "Mounts",
            json!([{"Type": "Bind", "Source": "/etc", "Target": "/h"}]),
            "HostConfig.Mounts[0].Type",
        ),
        (
            "Mounts",
            json!([{"Type": "image", "Source": "x", "Target": "/h"}]),
            "HostConfig.Mounts[0].Type",
        ),
        (
            "Mounts",
            json!([{"Type": "volume", "Source": "v", "Target": "/x,type=bind,source=/etc"}]),
            "Target",
        ),
        (
            "Mounts",
            json!([{"Type": "volume", "Source": "/etc", "Target": "/x"}]),
            "a volume mount takes a plain name",
        ),
        (
            "Mounts",
            json!([{"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]),
            "Options",
        ),
        (
            "Mounts",
            json!([{"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": "../../"}}]),
            "Subpath",
        ),
        (
            "Mounts",
            json!([{"Type": "bind", "Source": "/w/r-1", "Target": "/x", "BindOptions": {"Propagation": "rshared"}}]),
            "Propagation",
        ),
        (
            "Mounts",
            json!([{"Type": "bind", "Source": "/w/r-1", "Target": "/x", "BindOptions": {"CreateMountpoint": true}}]),
            "CreateMountpoint",
        ),
        ("PidMode", json!("host"), "HostConfig.PidMode"),
        ("IpcMode", json!("host"), "HostConfig.IpcMode"),
        ("UTSMode", json!("host"), "HostConfig.UTSMode"),
        ("UsernsMode", json!("host"), "HostConfig.UsernsMode"),
        ("UsernsMode", json!("keep-id"), "HostConfig.UsernsMode"),
        ("CgroupnsMode", json!("host"), "HostConfig.CgroupnsMode"),
        (
            "NetworkMode",
            json!("ns:/proc/1/ns/net"),
            "HostConfig.NetworkMode",
        ),
        (
            "NetworkMode",
            json!("pasta:--pcap,/tmp/x"),
            "HostConfig.NetworkMode",
        ),
        (
            "NetworkMode",
            json!("slirp4netns:allow_host_loopback=true"),
            "HostConfig.NetworkMode",
        ),
        ("PidMode", json!("ns:/proc/1/ns/pid"), "HostConfig.PidMode"),
        (
            "CapAdd",
            json!(["net_raw", "cap_sys_admin"]),
            "the capability cap_sys_admin",
        ),
        ("CapAdd", json!(["ALL"]), "the capability ALL"),
        (
            "CapAdd",
            json!(["DAC_READ_SEARCH"]),
            "the capability DAC_READ_SEARCH",
        ),
        (
            "Devices",
            json!([{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]),
            "HostConfig.Devices",
        ),
        (
            "DeviceCgroupRules",
            json!(["a *:* rwm"]),
            "HostConfig.DeviceCgroupRules",
        ),
        (
            "DeviceRequests",
            json!([{"Driver": "nvidia"}]),
            "HostConfig.DeviceRequests",
        ),
        (
            "BlkioDeviceReadBps",
            json!([{"Path": "/dev/sda", "Rate": 1}]),
            "HostConfig.BlkioDeviceReadBps",
        ),
        (
            "SecurityOpt",
            json!(["systempaths=unconfined"]),
            "the security option",
        ),
        (
            "SecurityOpt",
            json!(["seccomp=unconfined"]),
            "the security option",
        ),
        (
            "SecurityOpt",
            json!(["apparmor=unconfined"]),
            "the security option",
        ),
        (
            "SecurityOpt",
            json!(["label=disable"]),
            "the security option",
        ),
        ("SecurityOpt", json!(["unmask=ALL"]), "the security option"),
        ("MaskedPaths", json!([]), "HostConfig.MaskedPaths"),
        ("ReadonlyPaths", json!([]), "HostConfig.ReadonlyPaths"),
        (
            "LogConfig",
            json!({"Type": "k8s-file", "Config": {"path": "/etc/cron.d/x"}}),
            "the log option path",
        ),
        (
            "LogConfig",
            json!({"Type": "journald"}),
            "HostConfig.LogConfig",
        ),
        (
            "LogConfig",
            json!({"Type": "passthrough"}),
            "HostConfig.LogConfig",
        ),
        ("Runtime", json!("/tmp/evil"), "HostConfig.Runtime"),
        (
            "GroupAdd",
            json!(["keep-groups"]),
            "the group \"keep-groups\"",
        ),
        (
            "Sysctls",
            json!({"kernel.core_pattern": "|/tmp/x"}),
            "the sysctl kernel.core_pattern",
        ),
        ("StorageOpt", json!({"size": "1G"}), "HostConfig.StorageOpt"),
        (
            "Annotations",
            json!({"run.oci.keep_original_groups": "1"}),
            "HostConfig.Annotations",
        ),
        ("CgroupParent", json!("/"), "HostConfig.CgroupParent"),
        (
            "CpuRealtimeRuntime",
            json!(950000),
            "HostConfig.CpuRealtimeRuntime",
        ),
        ("OomKillDisable", json!(true), "HostConfig.OomKillDisable"),
        (
            "ContainerIDFile",
            json!("/etc/x"),
            "HostConfig.ContainerIDFile",
        ),
        ("VolumeDriver", json!("evil"), "HostConfig.VolumeDriver"),
        ("Tmpfs", json!({"/x,type=bind": ""}), "the container path"),
        ("hostconfig", json!({}), "the field HostConfig.hostconfig"),
        ("privileged", json!(true), "the field HostConfig.privileged"),
        (
            "ConmonPidFile",
            json!("/etc/x"),
            "the field HostConfig.ConmonPidFile",
        ),
    ];
    for (k, v, why) in cases {
        let err = host_config(k, v.clone()).expect_err(&format!("{k} {v}"));
        assert!(err.to_string().contains(why), "{k} {v}: {err}");
    }
    // Host networking with capabilities or sysctls that would act on the host's network.
    let err = create_with(|b| {
        let h = b["HostConfig"].as_object_mut().unwrap();
        h.insert("NetworkMode".into(), json!("host"));
        h.insert("CapAdd".into(), json!(["NET_ADMIN"]));
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("with HostConfig.NetworkMode = host"),
        "{err}"
    );
    let err = create_with(|b| {
        let h = b["HostConfig"].as_object_mut().unwrap();
        h.insert("NetworkMode".into(), json!("host"));
        h.insert("Sysctls".into(), json!({"net.ipv4.ip_forward": "0"}));
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("with HostConfig.NetworkMode = host"),
        "{err}"
    );
    // Top-level fields: anonymous volumes naming a source, libpod extensions, networks.
    for (k, v, why) in [
        ("Volumes", json!({"/etc:/host": {}}), "names a source"),
        ("Volumes", json!({"relative": {}}), "the container path"),
        ("EnvMerge", json!(["A=${HOME}"]), "the field EnvMerge"),
        ("image", json!("x"), "the field image"),
        (
            "NetworkingConfig",
            json!({"EndpointsConfig": {"ns:/proc/1/ns/net": {}}}),
            "the network",
        ),
        (
            "NetworkingConfig",
            json!({"EndpointsConfig": {"n": {"DriverOpts": {"x": "y"}}}}),
            "DriverOpts",
        ),
    ] {
        let err = create_with(|b| {
            b.insert(k.into(), v.clone());
        })
        .unwrap_err();
        assert!(err.to_string().contains(why), "{k} {v}: {err}");
    }
}

#[test]
fn exec_update_network_and_volume_bodies() {
    let p = policy();
    let obj = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(p.check_exec(&obj(json!({"Cmd": ["sh"], "AttachStdin": true, "WorkingDir": "/w", "Env": ["A=1"], "Privileged": false}))), Ok(()));
    for (body, why) in [
        (
            json!({"Cmd": ["sh"], "Privileged": true}),
            "a privileged exec",
        ),
        (
            json!({"Cmd": ["sh"], "privileged": true}),
            "the field privileged",
        ),
        (json!({"Cmd": ["sh"], "Privileged": 1}), "a privileged exec"),
    ] {
        let err = p.check_exec(&obj(body.clone())).unwrap_err();
        assert!(err.to_string().contains(why), "{body}: {err}");
    }
    assert_eq!(
        p.check_exec_start(&obj(json!({"Detach": false, "Tty": false}))),
        Ok(())
    );
    assert!(p
        .check_exec_start(&obj(json!({"Detach": false, "Privileged": true})))
        .is_err());
    assert_eq!(
        p.check_update(&obj(
            json!({"Memory": 5, "RestartPolicy": {"Name": "always"}})
        )),
        Ok(())
    );
    for body in [
        json!({"Devices": [{"PathOnHost": "/dev/sda"}]}),
        json!({"unified": {"memory.max": "max"}}),
        json!({"CgroupParent": "/"}),
        json!({"CpuRealtimeRuntime": 1}),
    ] {
        assert!(p.check_update(&obj(body.clone())).is_err(), "{body}");
    }
    let net = json!({"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{"l":""},"Name":"net2"});
    assert_eq!(p.check_network_create(&obj(net)), Ok(()));
    for (body, why) in [
        (
            json!({"Name": "n", "Driver": "macvlan", "Options": {"parent": "eth0"}}),
            "Driver",
        ),
        (
            json!({"Name": "n", "Options": {"com.docker.network.bridge.name": "eth0"}}),
            "the network option",
        ),
        (
            json!({"Name": "n", "IPAM": {"Driver": "host-local"}}),
            "IPAM.Driver",
        ),
        (json!({"Name": "../x"}), "Name"),
    ] {
        let err = p.check_network_create(&obj(body.clone())).unwrap_err();
        assert!(err.to_string().contains(why), "{body}: {err}");
    }
    assert_eq!(
        p.check_network_connect(&obj(
            json!({"Container": "c", "EndpointConfig": {"Aliases": ["a"]}})
        )),
        Ok(())
    );
    assert_eq!(
        p.check_volume_create(&obj(json!({"Driver": "local", "Name": "v1"}))),
        Ok(())
    );
    assert_eq!(p.check_volume_create(&obj(json!({"Name": "t", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}}))), Ok(()));
    for (body, why) in [
        (
            json!({"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}}),
            "driver options",
        ),
        (
            json!({"Name": "v", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "bind"}}),
            "the option \"bind\"",
        ),
        (json!({"Name": "v", "Driver": "image"}), "Driver"),
    ] {
        let err = p.check_volume_create(&obj(body.clone())).unwrap_err();
        assert!(err.to_string().contains(why), "{body}: {err}");
    }
}

#[test]
fn starts_check_the_sources_again() {
    let p = policy();
    let inspect = |src: &str| json!({"Mounts": [{"Type": "volume", "Source": "/var/lib/x"}, {"Type": "bind", "Source": src}]});
    assert_eq!(
        p.check_inspected_mounts(&inspect("/w/r-1/_work/a"), &resolve),
        Ok(())
    );
    let err = p
        .check_inspected_mounts(&inspect("/w/r-1/link/a"), &resolve)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("changed since it was created (now /etc/a)"),
        "{err}"
    );
    assert!(p
        .check_inspected_mounts(&inspect("/w/r-1/missing"), &resolve)
        .is_err());
    assert!(p
        .check_inspected_mounts(&inspect("/etc"), &resolve)
        .is_err());
}

#[test]
fn build_and_import_queries() {
    let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        check_build_query(&q(&[
            ("t", "a"),
            ("networkmode", "host"),
            ("dockerfile", "sub/Dockerfile")
        ])),
        Ok(())
    );
    for bad in [
        ("networkmode", "ns:/proc/1/ns/net"),
        ("outputs", "type=local,dest=/etc"),
        ("cgroupparent", "/"),
        ("remote", "/etc"),
        ("remote", "https://x/y.tar"),
        ("dockerfile", "/etc/passwd"),
        ("dockerfile", "../x"),
        ("dockerfile", "Containerfile.in"),
    ] {
        assert!(check_build_query(&q(&[bad])).is_err(), "{bad:?}");
    }
    assert_eq!(check_image_create_query(&q(&[("fromSrc", "-")])), Ok(()));
    assert!(check_image_create_query(&q(&[("fromSrc", "/etc/shadow")])).is_err());
    assert!(Refused::Malformed("x".into())
        .in_pool(" in pool ci")
        .to_string()
        .contains("docker_policy = \"open\" in pool ci"));
}

#[test]
fn read_only_folders_are_bound_read_only_whatever_the_job_asks() {
    let p = policy();
    let mut h = json!({
        "Binds": ["/s/externals/abc:/__e", "/s/externals/abc/node20:/n:rw,z",
                  "/s/externals/abc:/x:ro", "/w/r-1/_work:/w:rw", "vol:/v"],
        "Mounts": [{"Type": "bind", "Source": "/s/externals/abc", "Target": "/m", "ReadOnly": false},
                   {"Type": "bind", "Source": "/w/r-1/_work", "Target": "/k"},
                   {"Type": "volume", "Source": "/s/externals/abc", "Target": "/v2"}]
    });
    p.force_read_only(h.as_object_mut().unwrap());
    assert_eq!(
        h,
        json!({
            "Binds": ["/s/externals/abc:/__e:ro", "/s/externals/abc/node20:/n:z,ro",
                      "/s/externals/abc:/x:ro", "/w/r-1/_work:/w:rw", "vol:/v"],
            "Mounts": [{"Type": "bind", "Source": "/s/externals/abc", "Target": "/m", "ReadOnly": true},
                       {"Type": "bind", "Source": "/w/r-1/_work", "Target": "/k"},
                       {"Type": "volume", "Source": "/s/externals/abc", "Target": "/v2"}]
        })
    );
}

#[test]
fn a_container_holding_a_read_only_folder_writable_is_not_started() {
    let p = policy();
    let inspect = |rw: Value| json!({"Mounts": [{"Type": "bind", "Source": "/s/externals/abc/node20", "RW": rw}]});
    let id = |p: &str| Some(p.to_string());
    assert_eq!(
        p.check_inspected_mounts(&inspect(json!(false)), &id),
        Ok(())
    );
    for rw in [json!(true), Value::Null] {
        let err = p.check_inspected_mounts(&inspect(rw), &id).unwrap_err();
        assert!(
            err.to_string()
                .contains("mounts /s/externals/abc/node20 writable"),
            "{err}"
        );
    }
    // The work folder may be writable.
    let work = json!({"Mounts": [{"Type": "bind", "Source": "/w/r-1/_work", "RW": true}]});
    assert_eq!(p.check_inspected_mounts(&work, &id), Ok(()));
}

#[test]
fn nothing_is_copied_into_a_container_binding_a_read_only_folder() {
    let p = policy();
    let ok = json!({"Mounts": [{"Type": "bind", "Source": "/w/r-1/_work"}],
                    "HostConfig": {"Binds": ["/w/r-1/_work:/w"], "VolumesFrom": null}});
    assert_eq!(p.check_copy_in(&ok), Ok(()));
    for bad in [
        json!({"Mounts": [{"Type": "bind", "Source": "/s/externals/abc"}]}),
        json!({"Mounts": [], "HostConfig": {"Binds": ["/s/externals/abc/node20:/n:ro"]}}),
        json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/s/externals/abc"}]}}),
        json!({"Mounts": [], "HostConfig": {"VolumesFrom": ["holder"]}}),
    ] {
        let err = p.check_copy_in(&bad).unwrap_err();
        assert!(
            err.to_string().contains("copying into a container"),
            "{bad}: {err}"
        );
    }
    // Without read-only folders (no externals copy) nothing is refused.
    let open = Policy {
        allowed: vec!["/w/r-1".into()],
        read_only: Vec::new(),
    };
    assert_eq!(
        open.check_copy_in(&json!({"HostConfig": {"VolumesFrom": ["holder"]}})),
        Ok(())
    );
}

#[test]
fn volumes_from_keeps_modes_or_makes_them_read_only() {
    let create = |v: Value| {
        let mut m = Map::new();
        m.insert("Image".into(), json!("alpine"));
        m.insert("HostConfig".into(), json!({"VolumesFrom": v}));
        policy().check_docker_create(&m, &|p| Some(p.to_string()))
    };
    assert_eq!(create(json!(["holder", "other:ro", "x:ro,z"])), Ok(()));
    for bad in [
        json!(["holder:rw"]),
        json!(["holder:ro,rw"]),
        json!(["../x"]),
    ] {
        let err = create(bad.clone()).unwrap_err();
        assert!(
            err.to_string().contains("HostConfig.VolumesFrom"),
            "{bad}: {err}"
        );
    }
}
