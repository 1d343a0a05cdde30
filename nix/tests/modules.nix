# Evaluates the home-manager and NixOS modules without nixpkgs, against a small stand-in for
# the parts of nixpkgs' `lib` and `pkgs` they use: option declarations with their types and
# defaults, mkIf/mkMerge, pkgs.formats.toml and writeScriptBin. It checks what can be checked
# here (values against the declared types, defaults, the wiring from options to lib.nix and
# to the files and unit the modules produce); nixpkgs' own module system is only run by the
# flake's checks (docs/nix.md). Used by crates/podrunner/tests/nix.rs.
#
#   module: "home-manager" or "nixos"; values: the module's options as a user sets them;
#   wrappers: whether NixOS provides its setuid newuidmap/newgidmap (security.wrappers).
{ module, values, wrappers ? true }:
let
  inherit (builtins) all attrNames elem filter foldl' isAttrs isBool isFloat isFunction isInt
    isList isPath isString listToAttrs map match substring;

  mkType = name: check: extra: { _type = "type"; inherit name check; } // extra;

  types = rec {
    str = mkType "str" isString { };
    bool = mkType "bool" isBool { };
    float = mkType "float" isFloat { };
    package = mkType "package" (v: isString v || v ? outPath) { };
    path = mkType "path" (v: isPath v || isString v && substring 0 1 v == "/") { };
    strMatching = re: mkType "string matching ${re}" (v: isString v && match re v != null) { };
    enum = vs: mkType "one of ${toString vs}" (v: elem v vs) { };
    ints = {
      unsigned = mkType "unsigned integer" (v: isInt v && v >= 0) { };
      positive = mkType "positive integer" (v: isInt v && v > 0) { };
      u32 = mkType "32-bit unsigned integer" (v: isInt v && v >= 0 && v <= 4294967295) { };
    };
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v) { inner = t; };
    either = a: b: mkType "${a.name} or ${b.name}" (v: a.check v || b.check v) { };
    listOf = t: mkType "list of ${t.name}" (v: isList v && all (x: t.check x) v) { inner = t; };
    attrsOf = t: mkType "attribute set of ${t.name}" isAttrs { attrsOf = t; };
    submodule = m: mkType "submodule" isAttrs { submodule = m; };
  };

  lib = {
    inherit types;
    mkOption = o: o // { _type = "option"; };
    mkEnableOption = what: lib.mkOption {
      type = types.bool; default = false; example = true; description = "Whether to enable ${what}.";
    };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkDefault = v: v;
    optionalString = c: s: if c then s else "";
  };

  store = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    formats.toml = _: {
      type = mkType "TOML value" (_: true) { };
      generate = name: value: { outPath = store name; inherit name value; };
    };
    writeScriptBin = name: text: { outPath = store name; inherit name text; };
    runtimeShell = "/bin/sh";
    podrunner = store "podrunner";
    podman = store "podman";
    util-linux = store "util-linux";
    coreutils = store "coreutils";
  };

  # An option tree filled with `v`: declared options get the value or their default, checked
  # against their type; undeclared keys are kept only where a freeformType allows them.
  fill = where: opts: freeform: v:
    let
      declared = filter (n: (opts.${n}._type or null) == "option") (attrNames opts);
      unknown = filter (n: !(opts ? ${n})) (attrNames v);
      one = n:
        let o = opts.${n}; at = "${where}.${n}"; in
        if v ? ${n} then value at n o.type v.${n}
        else if o ? default then o.default
        else throw "${at} has no default and is not set";
    in
    if unknown != [ ] && !freeform then throw "${where}: no such option: ${toString unknown}"
    else listToAttrs (map (n: { name = n; value = one n; }) declared)
      // listToAttrs (map (n: { name = n; value = v.${n}; }) unknown);

  # A submodule's declarations; `name` is its attribute name under attrsOf.
  parts = name: m: if isFunction m then m { inherit name; } else m;

  value = at: name: type: v:
    if type ? submodule then
      let p = parts name type.submodule; in fill at (p.options or { }) (p ? freeformType) v
    else if type ? attrsOf then
      (if !isAttrs v then throw "${at}: expected ${type.name}"
       else listToAttrs (map (n: { name = n; value = value "${at}.${n}" n type.attrsOf v.${n}; }) (attrNames v)))
    else if type.check v then v
    else throw "${at}: ${builtins.toJSON v} is not a ${type.name}";

  # What the module's `config` becomes once mkIf and mkMerge are resolved.
  resolve = c:
    if (c._type or null) == "if" then (if c.condition then resolve c.content else { })
    else if (c._type or null) == "merge" then foldl' (a: b: a // resolve b) { } c.contents
    else c;

  home = rec {
    config = {
      programs.github-runner-container = fill "programs.github-runner-container"
        m.options.programs.github-runner-container false values;
      xdg.configHome = "/home/you/.config";
      home.profileDirectory = "/home/you/.nix-profile";
    };
    m = import ../home-manager.nix { inherit config lib pkgs; };
    out = resolve m.config;
  };

  nixos = rec {
    config = {
      services.podrunner = fill "services.podrunner" m.options.services.podrunner false values;
      virtualisation.podman.package = pkgs.podman;
      security.wrappers = if wrappers then { newuidmap = { }; newgidmap = { }; su = { }; } else { su = { }; };
    };
    m = import ../nixos.nix { inherit config lib pkgs; };
    out = resolve m.config;
  };

  failing = out: map (a: a.message) (filter (a: !a.assertion) (out.assertions or [ ]));

  # Every declared option with its path, whether it has a description and an example.
  declarations = where: opts:
    builtins.concatMap (n:
      let
        o = opts.${n};
        at = "${where}.${n}";
        t = o.type;
        inner = if t ? submodule then declarations at (parts n t.submodule).options
          else if t ? attrsOf && t.attrsOf ? submodule then declarations "${at}.<name>" (parts "NAME" t.attrsOf.submodule).options
          else [ ];
      in
      if (o._type or null) != "option" then [ ]
      else [ { path = at; description = o ? description; example = o ? example; } ] ++ inner)
      (attrNames opts);
in
if module == "home-manager" then {
  failures = failing home.out;
  config_toml = home.out.xdg.configFile."podrunner/config.toml".source.value;
  config_file = home.out.xdg.configFile."podrunner/config.toml".source.outPath;
  unit = home.out.systemd.user.services.podrunner;
  packages = map (p: p.name or p) home.out.home.packages;
  manage = (builtins.elemAt home.out.home.packages 1).text;
  options = declarations "programs.github-runner-container" home.m.options.programs.github-runner-container;
} else {
  failures = failing nixos.out;
  config_toml = nixos.out.environment.etc."podrunner/config.toml".source.value;
  config_file = nixos.out.environment.etc."podrunner/config.toml".source.outPath;
  unit = nixos.out.systemd.units."podrunner.service".text;
  wanted_by = nixos.out.systemd.units."podrunner.service".wantedBy;
  users = nixos.out.users or { };
  podman_enabled = nixos.out.virtualisation.podman.enable;
  packages = map (p: p.name or p) nixos.out.environment.systemPackages;
  manage = (builtins.elemAt nixos.out.environment.systemPackages 1).text;
  options = declarations "services.podrunner" nixos.m.options.services.podrunner;
}
