# The options both modules share: the original home-manager module's options with their
# meaning, and the whole config file (pools, [github], [podman], [manager]) with podrunner's
# own key names. Every key is documented in the README's configuration reference; unset
# (null) keys are left out of config.toml, so podrunner's defaults apply.
#
# Each section also accepts keys not declared here (freeformType): they go to config.toml as
# written and `podrunner config check` judges them.
{ lib, pkgs, plib }:
let
  inherit (lib) mkOption types literalExpression;
  toml = (pkgs.formats.toml { }).type;

  opt = type: description: example: mkOption { inherit type description example; default = null; };
  nullable = t: types.nullOr t;
  duration = types.either types.ints.unsigned (types.strMatching plib.durationPattern);
  memory = types.either types.ints.positive (types.strMatching plib.memoryPattern);
  nameType = types.strMatching plib.namePattern;
  stringList = description: example: mkOption {
    type = types.listOf types.str;
    default = [ ];
    inherit description example;
  };

  pool = { name, ... }: {
    freeformType = toml;
    options = {
      repository = opt (nullable (types.strMatching plib.repositoryPattern))
        "Repository the runners serve, `owner/repo`. Set this or `organization`."
        "you/your-repo";
      organization = opt (nullable types.str)
        "Organization the runners serve. Set this or `repository`."
        "your-org";
      runner_name = opt (nullable nameType)
        "Prefix of the runner names; each runner is `PREFIX-xxxxxxxx`. Default: the pool name."
        "ci-box";
      image = opt (nullable types.str)
        "Runner image: any image with GitHub's runner. Default: `${plib.defaults.image}`."
        "ghcr.io/actions/actions-runner:latest";
      command = opt (nullable (types.either types.str (types.listOf types.str)))
        "Program the container runs: a path or an argv list. Default: `/home/runner/run.sh`."
        [ "/home/runner/run.sh" ];
      runner_dir = opt (nullable (types.strMatching "/[^[:space:]]*"))
        "The runner's root folder in the image, where the settings from the JIT config go. Default: `/home/runner`."
        "/home/runner";
      labels = stringList
        "Extra runner labels; `self-hosted`, `linux` and `x64` are always there."
        [ "podman" "nix" ];
      count = opt (nullable types.ints.u32)
        "Runners kept registered and waiting. Default: 1."
        2;
      cpus = opt (nullable (types.either types.ints.positive types.float))
        "CPU limit per runner (`podman run --cpus`). Default: none."
        2;
      memory = opt (nullable memory)
        "Memory limit per runner (`podman run --memory`): `\"4g\"`, `\"512m\"` or megabytes (`\"4096\"`). Default: none."
        "4g";
      pids_limit = opt (nullable types.ints.unsigned)
        "Process limit per runner (`podman run --pids-limit`). Default: 4096."
        4096;
      work_dir = opt (nullable types.str)
        "Host folder for the per-runner work folders, mounted at the same path. Default: `~/.local/share/podrunner/work/${name}`."
        "/srv/runner-work";
      restart_delay = opt (nullable duration)
        "Pause before a replacement runner starts (seconds or `\"10s\"`, `\"2m\"`). Default: 1s."
        "5s";
      stop_timeout = opt (nullable duration)
        "How long `podman stop` waits for a runner; at least 60 s, the runner needs up to 30 s to cancel a job. Default: 60s."
        "120s";
      runner_group_id = opt (nullable types.ints.unsigned)
        "Runner group id. Default: 1 (the default group)."
        1;
      run_args = stringList
        "Extra `podman run` arguments for this pool."
        [ "--network=host" ];
      docker = opt (nullable (types.enum [ "isolated" "host" "none" ]))
        "Docker for jobs: `isolated` (a private Podman engine per runner), `host` (the user's Podman socket, shared by all jobs) or `none`. Default: isolated."
        "isolated";
      docker_policy = opt (nullable (types.enum [ "contained" "open" ]))
        "What a job may ask of its engine: `contained` (no privileged containers, host paths or host namespaces) or `open` (trusted jobs only). Default: contained."
        "contained";
      enterprise = opt (nullable types.str)
        "Enterprise slug whose runners the pool provides (classic token with `manage_runners:enterprise`; docs/credentials.md)."
        "your-enterprise";
      runner_group = opt (nullable types.str)
        "Runner group by name (organization and enterprise pools), resolved to its id."
        "Linux builders";
      min_idle = opt (nullable types.ints.unsigned)
        "Demand pools: idle runners kept ready (docs/scaling.md). Default: 0."
        1;
      max = opt (nullable types.ints.positive)
        "Demand pools: runners at most, busy or not (docs/scaling.md)."
        4;
      idle_timeout = opt (nullable duration)
        "Demand pools: how long an idle runner waits for a job before it is retired. Default: 5m."
        "10m";
      scale_set = opt (nullable (types.either types.bool types.str))
        "Make the pool a GitHub runner scale set (`true`: named like the pool, or a name; docs/scaling.md)."
        true;
      disable_update = opt (nullable types.bool)
        "Scale set pools: the scale set's runners do not update themselves. Default: false."
        true;
      poll_interval = opt (nullable duration)
        "Label demand pools: how often queued jobs are polled. Default: 10s."
        "15s";
      online_timeout = opt (nullable duration)
        "A runner not online after this long is retired and counted a failure. Default: 5m."
        "10m";
      pull = opt (nullable (types.enum [ "newer" "missing" "never" ]))
        "When podrunner pulls the image (docs/images.md). Default: newer."
        "missing";
      pull_interval = opt (nullable duration)
        "How often to look for a newer image with `pull = \"newer\"`. Default: 6h."
        "12h";
      pull_source = opt (nullable types.str)
        "Pull from this reference instead of `image` (any podman transport); the result is tagged as `image`."
        "oci-archive:/srv/images/runner.tar";
      engine_containers_conf = opt (nullable (types.either types.path types.str))
        "A containers.conf for the pool's private engines (isolated mode). A Nix path is copied to the store."
        (literalExpression "./engine-containers.conf");
    };
  };

  section = name: example: options: mkOption {
    type = types.submodule { freeformType = toml; inherit options; };
    default = { };
    description = "The `[${name}]` table of config.toml (the README's configuration reference).";
    inherit example;
  };
in
{
  # --- the original module's options ------------------------------------------------------
  repository = opt (nullable (types.strMatching plib.repositoryPattern))
    "Original option: the repository (`owner/repo`) of the runner. Setting it defines the pool `${plib.defaults.legacyPool}` (one runner; `pools.${plib.defaults.legacyPool}.*` adds or overrides keys)."
    "you/your-repo";
  runnerName = opt (nullable nameType)
    "Original option: prefix of the runner names (`runner_name` of the pool)."
    "my-laptop";
  image = opt (nullable types.str)
    "Original option: the runner image (`image` of the pool)."
    "ghcr.io/actions/actions-runner:latest";
  extraLabels = stringList
    "Original option: labels besides `self-hosted`, `linux`, `x64` (`labels` of the pool)."
    [ "nix" "podman" ];
  workDir = opt (nullable types.str)
    "Original option: host folder for the runners' work folders (`work_dir` of the pool)."
    "/home/you/runner-work";
  tokenFile = opt (nullable types.str)
    "Original option: file holding the GitHub token (`[github] token_file`). Keep it outside the Nix store, mode 600. Default: `${plib.defaults.tokenFile}`."
    "/run/secrets/github-runner-token";
  vmMemory = opt (nullable (types.strMatching plib.memoryPattern))
    "Original option: memory limit of the runner in megabytes, a string (`memory` of the pool; `\"4g\"` works too)."
    "4096";
  vmCpus = opt (nullable (types.strMatching plib.cpusPattern))
    "Original option: CPU limit of the runner, a string (`cpus` of the pool)."
    "2";

  # --- the whole config file ----------------------------------------------------------------
  pools = mkOption {
    type = types.attrsOf (types.submodule pool);
    default = { };
    description = "Runner pools, by name (`[[pool]]` in config.toml): letters, digits, `-`, `_`, `.`.";
    example = literalExpression ''
      {
        ci = { repository = "you/your-repo"; count = 2; cpus = 2; memory = "4g"; labels = [ "podman" ]; };
        org = { organization = "your-org"; count = 4; docker = "none"; };
      }
    '';
  };

  github = section "github" { token_file = "/run/secrets/github-runner-token"; } {
    api_url = opt (nullable (types.strMatching "https?://.*"))
      "GitHub's API. Default: `${plib.defaults.apiUrl}`; GitHub Enterprise Server: `https://HOST/api/v3`."
      "https://github.example.com/api/v3";
    token_file = opt (nullable types.str)
      "File holding the GitHub token, outside the Nix store, mode 600 (`tokenFile` sets it too). Default: `${plib.defaults.tokenFile}`."
      "/run/secrets/github-runner-token";
    app_id = opt (nullable types.ints.positive)
      "GitHub App id (or set `client_id`); with `private_key_file` (docs/credentials.md)."
      123456;
    client_id = opt (nullable types.str)
      "GitHub App client id, instead of `app_id`."
      "Iv23liEXAMPLE";
    private_key_file = opt (nullable types.str)
      "The GitHub App's private key (PEM), outside the Nix store, mode 600."
      "/run/secrets/github-app.pem";
    installation_id = opt (nullable types.ints.positive)
      "The App's installation; default: looked up for each pool's repository or organization."
      987654;
  };

  podman = section "podman" { runtime = "runc"; } {
    path = opt (nullable types.str)
      "The podman program. Default: the `podmanPackage`'s podman, else `podman` from PATH."
      "/usr/bin/podman";
    runtime = opt (nullable types.str)
      "OCI runtime for every podman call: `runc`, `crun` or a path. Default: Podman's."
      "runc";
    global_args = stringList "Arguments before every podman subcommand." [ "--log-level=warn" ];
    run_args = stringList "Extra `podman run` arguments for every runner." [ "--network=slirp4netns" ];
  };

  manager = section "manager" { drain_timeout = "2h"; } {
    instance = opt (nullable nameType)
      "Tells two managers on one host apart (container label, socket name). Default: `default`."
      "default";
    state_dir = opt (nullable types.str)
      "Runner and manager logs. Default: `~/.local/state/podrunner` (root: `/var/lib/podrunner`)."
      "/var/lib/podrunner";
    runtime_dir = opt (nullable types.str)
      "Control socket and JIT config files (tmpfs). Default: `$XDG_RUNTIME_DIR/podrunner` (root: `/run/podrunner`)."
      "/run/podrunner";
    drain_timeout = opt (nullable duration)
      "How long a stop waits for busy runners before stopping them. Default: 6h."
      "2h";
    log_file = opt (nullable types.bool)
      "Also write the manager's log to `state_dir/manager.log`. Default: true."
      false;
    host_id = opt (nullable types.str)
      "Part of every runner name so hosts sharing this config never collide (docs/hosts.md). Default: from /etc/machine-id."
      "buildbox";
    webhook_listen = opt (nullable types.str)
      "Address for `workflow_job` webhooks (docs/scaling.md)."
      "127.0.0.1:8088";
    webhook_secret_file = opt (nullable types.str)
      "The webhooks' shared secret, mode 600; required with `webhook_listen`."
      "/run/secrets/github-webhook-secret";
    listen = opt (nullable types.str)
      "Metrics at `/metrics` and the status page at `/`: an address or a Unix socket path (docs/metrics.md)."
      "127.0.0.1:9464";
    history = opt (nullable types.bool)
      "Record every runner and job in `state_dir/history.sqlite` (docs/history.md). Default: true."
      false;
    history_max_age = opt (nullable duration)
      "History rows older than this are deleted. Default: 30d."
      "7d";
    history_max_size = opt (nullable memory)
      "The history is kept within this size, oldest rows first. Default: 64m."
      "16m";
  };
}
