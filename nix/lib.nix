# podrunner's Nix library: everything that turns module options into config.toml data, the
# systemd unit and the github-runner-manage script. Builtins only (no nixpkgs), so that
# `nix-instantiate --eval --strict` can test it on a machine without nixpkgs
# (crates/podrunner/tests/nix.rs; docs/nix.md says what is tested where).
#
# The modules (home-manager.nix, nixos.nix) declare the options and call this file; they
# decide nothing themselves.
let
  inherit (builtins)
    all any attrNames concatLists concatMap concatStringsSep elem filter foldl' genList head
    isAttrs isFloat isInt isList isPath isString length listToAttrs map match replaceStrings
    split stringLength substring tail toJSON;

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = replaceStrings upper lower;
  max = a: b: if a > b then a else b;
  maxOf = init: foldl' max init;
  nonNull = attrs: listToAttrs (map (n: { name = n; value = attrs.${n}; })
    (filter (n: attrs.${n} != null) (attrNames attrs)));
  matches = re: s: isString s && match re s != null;
  str = toJSON;
in
rec {
  # The defaults podrunner itself applies (crates/podrunner/src/config/mod.rs); the modules
  # show them in option descriptions and use them for the unit's timings.
  defaults = {
    apiUrl = "https://api.github.com";
    image = "ghcr.io/actions/actions-runner:latest";
    tokenFile = "~/.github-runner-token";
    labels = [ "self-hosted" "linux" "x64" ];
    restartDelay = 1;
    stopTimeout = 60;
    drainTimeout = 6 * 3600;
    # The pool the original module's options describe (one runner, like the original).
    legacyPool = "github-runner";
  };

  # Limits podrunner enforces (config/mod.rs, config/names.rs, config/values.rs).
  limits = {
    minStopTimeout = 60;
    maxLabels = 100;
    maxLabelLength = 256;
    poolNameLength = 40;
    runnerPrefixLength = 55;
    minMemoryBytes = 6 * 1024 * 1024;
    maxCpus = 1024;
  };

  # The unit's timings (systemd/unit.rs): the least RestartSec= and the margin added to
  # TimeoutStopSec=.
  unitConstants = {
    name = "podrunner.service";
    watchdogSec = 60;
    startTimeoutSec = 300;
    minRestartSec = 5;
    stopMarginSecs = 30;
    exitConfigInvalid = 2;
  };

  # --- value syntax -------------------------------------------------------------------------

  # A name podrunner puts in container names, labels and GitHub runner names.
  namePattern = "[A-Za-z0-9][A-Za-z0-9._-]*";
  githubNamePattern = "[A-Za-z0-9._-]+";
  repositoryPattern = "${githubNamePattern}/${githubNamePattern}";
  # The duration units humantime (podrunner's parser) accepts that this file converts.
  durationUnits = {
    ms = 1; msec = 1;
    s = 1000; sec = 1000; secs = 1000; second = 1000; seconds = 1000;
    m = 60000; min = 60000; mins = 60000; minute = 60000; minutes = 60000;
    h = 3600000; hr = 3600000; hrs = 3600000; hour = 3600000; hours = 3600000;
    d = 86400000; day = 86400000; days = 86400000;
    w = 604800000; week = 604800000; weeks = 604800000;
  };
  durationPattern =
    let unit = "(${concatStringsSep "|" (attrNames durationUnits)})";
    in " *([0-9]+|([0-9]+(\\.[0-9]+)? *${unit} *)+) *";
  # A size: "4g", "512m", "1.5g", or megabytes ("4096"), as podrunner's Memory accepts.
  memoryPattern = " *([0-9]+(\\.[0-9]+)?) *([bBkKmMgGtT]|[kKmMgGtT][bB]|[kKmMgGtT][iI][bB])? *";
  cpusPattern = "[0-9]+(\\.[0-9]+)?";

  # Whole seconds, rounded up, of a duration: a number of seconds or a string like "1h 30m".
  durationSeconds = v:
    if isInt v then v
    else if !(matches durationPattern v) then throw "duration ${str v}: expected a number of seconds or a string like \"10s\", \"2m\", \"1h 30m\""
    else if match " *[0-9]+ *" v != null then builtins.fromJSON (head (match " *([0-9]+) *" v))
    else
      let
        parts = filter isList (split "([0-9]+(\\.[0-9]+)?) *([A-Za-z]+)" v);
        ms = foldl' (acc: p: acc + builtins.fromJSON (head p) * durationUnits.${head (tail (tail p))}) 0 parts;
        # Fractions ("1.5h") make a float; whole milliseconds, rounded, avoid its error.
        whole = if isFloat ms then builtins.floor (ms + 0.5) else ms;
      in (whole + 999) / 1000;

  memoryBytes = v:
    let
      m = if isInt v then [ (toString v) null null ] else if isString v then match memoryPattern v else null;
      unit = toLower (if m == null || (head (tail (tail m))) == null then "" else head (tail (tail m)));
      mult = {
        "" = 1024 * 1024; b = 1;
        k = 1024; kb = 1024; kib = 1024;
        m = 1024 * 1024; mb = 1024 * 1024; mib = 1024 * 1024;
        g = 1024 * 1024 * 1024; gb = 1024 * 1024 * 1024; gib = 1024 * 1024 * 1024;
        t = 1024 * 1024 * 1024 * 1024; tb = 1024 * 1024 * 1024 * 1024; tib = 1024 * 1024 * 1024 * 1024;
      }.${unit};
    in if m == null then null else builtins.fromJSON (head m) * mult;

  # --- options -> config.toml data ------------------------------------------------------------

  # The pool the original module's options describe, or null when `repository` is unset.
  # `vmCpus` is a string there; config.toml wants a number.
  legacyPool = o:
    if (o.repository or null) == null then null
    else nonNull {
      repository = o.repository;
      runner_name = o.runnerName or null;
      image = o.image or null;
      labels = if (o.extraLabels or [ ]) == [ ] then null else o.extraLabels;
      work_dir = o.workDir or null;
      memory = o.vmMemory or null;
      cpus = if matches cpusPattern (o.vmCpus or null) then builtins.fromJSON o.vmCpus else o.vmCpus or null;
    };

  # A path given as a Nix path literal goes to the store; strings stay as they are.
  pathValue = v: if isPath v then "${v}" else v;

  # Drops what is unset: null, and the empty lists the list options default to (an empty
  # `command` stays, for the check to refuse), so the file holds only what the user chose.
  clean = attrs: nonNull (builtins.mapAttrs (k: v:
    if v == [ ] && elem k [ "labels" "run_args" "global_args" ] then null
    else if isPath v then pathValue v else v) attrs);

  # The pools by name: `pools.<name>` merged over the pool of the original options (the
  # user's non-null keys win).
  allPools = o:
    let legacy = legacyPool o; pools = o.pools or { };
    in if legacy == null then pools
    else pools // { ${defaults.legacyPool} = legacy // clean (pools.${defaults.legacyPool} or { }); };

  # What config.toml holds, as data for pkgs.formats.toml (which writes TOML from JSON, so
  # no value may be null). `o`: the module's options (`pools`, `github`, `podman`, `manager`
  # and the original module's options).
  configData = o:
    let
      pools = allPools o;
      github = clean ((o.github or { }) // (if (o.tokenFile or null) != null then { token_file = o.tokenFile; } else { }));
      podman = clean (o.podman or { });
      manager = clean (o.manager or { });
      section = name: value: if value == { } then { } else { ${name} = value; };
    in
    section "github" github // section "podman" podman // section "manager" manager
    // { pool = map (name: { inherit name; } // clean pools.${name}) (attrNames pools); };

  # --- what `podrunner config check` refuses, as module assertions ---------------------------

  # [{ assertion; message; }] for the modules' `assertions`; `prefix` is the option path
  # ("programs.github-runner-container" or "services.podrunner").
  checks = prefix: o:
    let
      data = configData o;
      pools = data.pool;
      github = data.github or { };
      manager = data.manager or { };
      check = ok: msg: { assertion = ok; message = "${prefix}${msg}"; };
      nameOk = maxLen: s: matches namePattern s && stringLength s <= maxLen;
      githubNameOk = s: matches githubNamePattern s && stringLength s <= 100 && s != "." && s != "..";
      durationOk = v: isInt v && v >= 0 || matches durationPattern v;
      labelOk = l: isString l && l != "" && stringLength l <= limits.maxLabelLength
        && match "( .*|.* |.*,.*|.*[[:cntrl:]].*)" l == null;
      uniqueLabels = p: foldl' (acc: l: if elem (toLower l) acc then acc else acc ++ [ (toLower l) ])
        defaults.labels (filter isString (p.labels or [ ]));
      prefixes = map (p: p.runner_name or p.name) pools;
      isStore = s: isString s && substring 0 11 s == "/nix/store/";
      poolChecks = p:
        let
          at = key: ".pools.${p.name}.${key}";
          has = k: p ? ${k};
        in [
          (check (nameOk limits.poolNameLength p.name)
            ".pools.\"${p.name}\": a pool name is 1 to ${toString limits.poolNameLength} letters, digits, '-', '_' or '.', starting with a letter or digit; rename the pool")
          (check (has "repository" != has "organization")
            "${at "repository"}: set exactly one of repository = \"owner/repo\" and organization = \"org\"")
          (check (!has "repository" || matches repositoryPattern p.repository
              && all githubNameOk (filter isString (split "/" p.repository)))
            "${at "repository"}: ${str (p.repository or "")} must have the form \"owner/repo\" (letters, digits, '-', '_', '.')")
          (check (!has "organization" || githubNameOk p.organization)
            "${at "organization"}: ${str (p.organization or "")} is not a GitHub organization name (letters, digits, '-', '_', '.')")
          (check (!has "runner_name" || nameOk limits.runnerPrefixLength p.runner_name)
            "${at "runner_name"}: a runner name prefix is 1 to ${toString limits.runnerPrefixLength} letters, digits, '-', '_' or '.', starting with a letter or digit")
          (check (has "runner_name" || nameOk limits.runnerPrefixLength p.name)
            "${at "runner_name"}: the pool name is no valid runner name prefix; set runner_name")
          (check (length (filter (x: x == (p.runner_name or p.name)) prefixes) == 1)
            "${at "runner_name"}: runner_name \"${p.runner_name or p.name}\" is used by two pools; give each pool its own prefix")
          (check (all labelOk (p.labels or [ ]))
            "${at "labels"}: labels are non-empty, at most ${toString limits.maxLabelLength} characters, without commas, control characters or spaces at either end")
          (check (length (uniqueLabels p) <= limits.maxLabels)
            "${at "labels"}: GitHub allows at most ${toString limits.maxLabels} labels, the 3 default ones included; remove some")
          (check (!has "cpus" || (isInt p.cpus || isFloat p.cpus) && p.cpus > 0 && p.cpus <= limits.maxCpus)
            "${at "cpus"} (vmCpus): ${str (p.cpus or "")} must be a number above 0 and at most ${toString limits.maxCpus}, such as 2 or 1.5")
          (check (!has "memory" || (let b = memoryBytes p.memory; in b != null && b >= limits.minMemoryBytes))
            "${at "memory"} (vmMemory): ${str (p.memory or "")} must be a size like \"4g\", \"512m\" or megabytes like \"4096\", at least 6m")
          (check (!has "stop_timeout" || durationOk p.stop_timeout && durationSeconds p.stop_timeout >= limits.minStopTimeout)
            "${at "stop_timeout"}: must be at least ${toString limits.minStopTimeout}s: the runner needs up to 30 s to cancel a job")
          (check (!has "restart_delay" || durationOk p.restart_delay)
            "${at "restart_delay"}: expected a number of seconds or a string like \"10s\", \"2m\", \"1h 30m\"")
          (check (!has "runner_dir" || matches "/[^[:space:]]*" p.runner_dir)
            "${at "runner_dir"}: write the absolute folder inside the image that holds the runner's run.sh, without spaces")
          (check (!has "command" || (let c = if isList p.command then p.command else [ p.command ];
              in c != [ ] && all isString c && match "[[:space:]]*" (head c) == null))
            "${at "command"}: must name a program: a path or a non-empty list of strings")
          (check (!has "docker" || elem p.docker [ "isolated" "host" "none" ])
            "${at "docker"}: write \"isolated\" (a private engine per runner), \"host\" (the user's Podman socket) or \"none\"")
          (check (!has "docker_policy" || elem p.docker_policy [ "contained" "open" ])
            "${at "docker_policy"}: write \"contained\" or \"open\" (trusted jobs only)")
          (check (!has "count" || isInt p.count && p.count >= 0 && p.count <= 4294967295)
            "${at "count"}: a number of runners, 0 or more")
        ];
    in
    [
      (check (pools != [ ])
        ": no pool is defined; set repository (the original options) or pools.<name>.repository")
      (check ((o.tokenFile or null) == null || (o.github.token_file or null) == null || o.tokenFile == o.github.token_file)
        ".tokenFile and ${prefix}.github.token_file disagree; keep one of them")
      (check (!(github ? token_file) || !isStore github.token_file && !isPath (o.tokenFile or o.github.token_file or null))
        ".github.token_file (tokenFile): the token must not be in the Nix store, which every user can read; give the path of a file outside it (chmod 600)")
      (check (!(github ? api_url) || matches "https?://.*" github.api_url)
        ".github.api_url: use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server")
      (check (!(manager ? instance) || nameOk limits.poolNameLength manager.instance)
        ".manager.instance: 1 to ${toString limits.poolNameLength} letters, digits, '-', '_' or '.'")
      (check (!(manager ? drain_timeout) || durationOk manager.drain_timeout)
        ".manager.drain_timeout: expected a number of seconds or a string like \"6h\"")
    ] ++ concatMap poolChecks pools;

  # Messages of the failing checks: what the modules' assertions would print.
  failures = prefix: o: map (c: c.message) (filter (c: !c.assertion) (checks prefix o));

  # --- the systemd unit -------------------------------------------------------------------------

  # RestartSec= and TimeoutStopSec= from the config data, as `podrunner install` derives them
  # (UnitOptions::from_config).
  unitTimings = data:
    let
      pools = data.pool or [ ];
      restart = maxOf 0 (map (p: durationSeconds (p.restart_delay or defaults.restartDelay)) pools);
      stop = maxOf 0 (map (p: durationSeconds (p.stop_timeout or defaults.stopTimeout)) pools);
    in {
      restartSec = max restart unitConstants.minRestartSec;
      timeoutStopSec = durationSeconds (data.manager.drain_timeout or defaults.drainTimeout)
        + (if pools == [ ] then limits.minStopTimeout else stop) + unitConstants.stopMarginSecs;
    };

  # One ExecStart= argument, quoted as `podrunner install` quotes it (quote_exec_arg).
  quoteExecArg = s:
    let e = replaceStrings [ "%" "$" ] [ "%%" "$$" ] s;
    in if e == "" || match ".*([[:space:]]|[\"'\\;]).*" e != null
    then "\"${replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] e}\""
    else e;

  # The unit as sections of [key value] pairs, in the order `podrunner install` writes them.
  #   exe, config: absolute paths; scope: "user" or { user; uid; } (a system unit);
  #   restartSec, timeoutStopSec: from unitTimings;
  #   path: null, or the directories for PATH (Nix hosts: where podman and NixOS's setuid
  #   newuidmap are); reloadTriggers: store paths whose change should reload, not restart.
  #   kill: the kill program for ExecReload= (NixOS has no /bin/kill).
  unit = { exe, config, scope ? "user", restartSec, timeoutStopSec, path ? null, reloadTriggers ? [ ], kill ? "/bin/kill" }:
    let
      system = isAttrs scope;
      uid = if system then scope.uid else null;
      deps = if !system then [ ]
        else if uid == 0 then [ [ "Wants" "network-online.target" ] [ "After" "network-online.target" ] ]
        else [ [ "Wants" "network-online.target user@${toString uid}.service" ]
               [ "After" "network-online.target user@${toString uid}.service" ] ];
    in [
      { name = "Unit"; entries =
          [ [ "Description" "podrunner: ephemeral self-hosted GitHub Actions runners in Podman" ] ]
          ++ deps
          ++ map (t: [ "X-Reload-Triggers" "${t}" ]) reloadTriggers; }
      { name = "Service"; entries = [
          [ "Type" "notify" ]
          [ "NotifyAccess" "main" ]
          [ "ExecStart" "${quoteExecArg exe} --config ${quoteExecArg config} run" ]
          [ "ExecReload" "${kill} -HUP $MAINPID" ]
          [ "WatchdogSec" (toString unitConstants.watchdogSec) ]
          [ "TimeoutStartSec" (toString unitConstants.startTimeoutSec) ]
          [ "Restart" "on-failure" ]
          [ "RestartSec" (toString restartSec) ]
          [ "RestartPreventExitStatus" (toString unitConstants.exitConfigInvalid) ]
          [ "TimeoutStopSec" (toString timeoutStopSec) ]
          [ "KillMode" "process" ]
          [ "UMask" "0077" ]
        ]
        ++ (if system then [ [ "User" scope.user ] ] else [ ])
        ++ (if system && uid != 0 then [
          [ "Environment" "XDG_RUNTIME_DIR=/run/user/${toString uid}" ]
          [ "Environment" "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/${toString uid}/bus" ]
        ] else [ ])
        ++ (if path == null then [ ] else [ [ "Environment" "PATH=${concatStringsSep ":" path}" ] ]); }
      { name = "Install"; entries = [ [ "WantedBy" (if system then "multi-user.target" else "default.target") ] ]; }
    ];

  # PATH for the service on a Nix host: NixOS's setuid newuidmap/newgidmap wrappers first
  # (rootless Podman needs them and finds them through PATH), then podman, the user's
  # profile, and the distribution's folders, where a non-NixOS host keeps its own setuid
  # newuidmap (Nix cannot install setuid programs).
  servicePath = { podman ? null, profile ? null, extra ? [ ] }:
    [ "/run/wrappers/bin" ]
    ++ (if podman == null then [ ] else [ "${podman}/bin" ])
    ++ (if profile == null then [ ] else [ "${profile}/bin" ])
    ++ extra
    ++ [ "/run/current-system/sw/bin" "/usr/local/bin" "/usr/bin" "/bin" ];

  # The unit file's text.
  renderUnit = sections:
    "# Written by podrunner's Nix module (nix/lib.nix), the same unit `podrunner install` writes.\n"
    + concatStringsSep "\n" (map (s: "[${s.name}]\n"
        + concatStringsSep "" (map (e: "${head e}=${head (tail e)}\n") s.entries)) sections);

  # The unit as home-manager's systemd.user.services.<name> wants it: a key that appears
  # several times becomes a list (written as repeated lines).
  systemdAttrs = sections: listToAttrs (map (s: {
    inherit (s) name;
    value = listToAttrs (map (k: {
      name = k;
      value = let vs = map (e: head (tail e)) (filter (e: head e == k) s.entries);
        in if length vs == 1 then head vs else vs;
    }) (attrNames (listToAttrs (map (e: { name = head e; value = null; }) s.entries))));
  }) sections);

  # --- github-runner-manage ---------------------------------------------------------------------

  # The original module's command: `github-runner-manage start|status|logs|stop`, here a thin
  # front to podrunner's own commands (which go through systemd when the unit is installed).
  #   podrunner: the binary; config: the config file; run: how to reach the manager's user
  #   ("" for the user itself; e.g. "runuser -u podrunner --" for a system unit's user).
  manageScript = { podrunner, config, shell ? "/usr/bin/env bash", run ? "", systemctl ? "systemctl --user" }: ''
    #!${shell}
    # github-runner-manage: the original module's command, kept for its users (docs/nix.md).
    set -euo pipefail
    usage() {
      echo "usage: github-runner-manage start|status|logs|stop [ARGS...]" >&2
      echo "  start   start the runner service" >&2
      echo "  status  the service, the pools and every runner (podrunner status)" >&2
      echo "  logs    the manager's log, or a runner's with its name; -f follows" >&2
      echo "  stop    stop the service: idle runners are removed, busy ones finish their job" >&2
      exit 2
    }
    [ $# -ge 1 ] || usage
    verb=$1
    shift
    case "$verb" in
      start|stop) exec ${systemctl} "$verb" ${unitConstants.name} ;;
      status|logs) exec ${if run == "" then "" else "${run} "}${quoteShell podrunner} --config ${quoteShell config} "$verb" "$@" ;;
      *) usage ;;
    esac
  '';

  quoteShell = s: "'${replaceStrings [ "'" ] [ "'\\''" ] s}'";
}
