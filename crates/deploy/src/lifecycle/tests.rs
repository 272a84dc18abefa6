//! Unit tests of the lifecycle: which plans can run locally and which engine `up` chooses (binary_path, PATH, the builtin pin, --engine).

use super::*;
use crate::settings::tests::reg;

#[test]
fn plans_refuse_what_cannot_run_locally() {
    let o = RenderOptions::default();
    let remote =
        reg("registry: {deployment: remote, type: zot, endpoint: r, remote: {}, namespaces: {}}");
    assert!(matches!(
        LocalPlan::from_registry(&remote, &o),
        Err(DeployError::NotLocal { .. })
    ));
    let harbor = reg("registry: {deployment: local, type: harbor, endpoint: h, \
                      local: {data_dir: /d, config_path: /d/c}, namespaces: {}}");
    assert!(matches!(
        LocalPlan::from_registry(&harbor, &o),
        Err(DeployError::RemoteOnly { .. })
    ));
    let token_only = reg("registry: {deployment: local, type: zot, endpoint: h, auth_required: true, \
                          auth_token_path: /t, local: {data_dir: /d, config_path: /d/c}, namespaces: {}}");
    let err = LocalPlan::from_registry(&token_only, &o).unwrap_err();
    assert!(err.to_string().contains("registry.auth_required"), "{err}");
}

#[test]
fn runner_prefers_binary_path_then_path_then_builtin() {
    let o = RenderOptions::default();
    let r = reg("registry: {deployment: local, type: distribution, endpoint: h, \
                 local: {data_dir: /d, config_path: /d/c, binary_path: /nonexistent/registry}, namespaces: {}}");
    let plan = LocalPlan::from_registry(&r, &o).unwrap();
    let builtin = BuiltinEngine {
        program: PathBuf::from("/bin/ocireg"),
        config_json: "{}".into(),
        version: "ocireg test".into(),
    };
    let mut opts = LifecycleOptions {
        builtin: Some(builtin),
        path_var: Some(OsString::new()),
        ..LifecycleOptions::default()
    };
    assert!(matches!(
        choose_runner(&plan.settings, &opts),
        Err(DeployError::BinaryMissing { .. })
    ));
    let mut s = plan.settings.clone();
    s.view.binary = EngineBinary::Search;
    assert!(matches!(choose_runner(&s, &opts), Ok(Runner::BuiltIn(_))));
    opts.path_var = Some(OsString::from("/usr/bin"));
    assert!(
        matches!(choose_runner(&s, &opts), Ok(Runner::Native(p)) if p.ends_with("docker-registry"))
    );
    opts.builtin = None;
    opts.path_var = Some(OsString::new());
    assert!(matches!(
        choose_runner(&s, &opts),
        Err(DeployError::NoEngine { .. })
    ));
}

#[test]
fn builtin_pin_and_engine_override_win_over_path() {
    let r = reg(
        "registry: {deployment: local, type: distribution, endpoint: h, \
                 local: {data_dir: /d, config_path: /d/c, binary_path: builtin}, namespaces: {}}",
    );
    let plan = LocalPlan::from_registry(&r, &RenderOptions::default()).unwrap();
    let mut opts = LifecycleOptions {
        builtin: Some(BuiltinEngine {
            program: PathBuf::from("/bin/ocireg"),
            config_json: "{}".into(),
            version: "ocireg test".into(),
        }),
        path_var: Some(OsString::from("/usr/bin")),
        ..LifecycleOptions::default()
    };
    let pinned = choose_runner(&plan.settings, &opts).unwrap();
    assert_eq!(pinned.engine(plan.settings.kind), EngineId::Builtin);
    opts.engine = Some(EngineId::Distribution);
    let native = choose_runner(&plan.settings, &opts).unwrap();
    assert!(matches!(&native, Runner::Native(p) if p.ends_with("docker-registry")));
    assert_eq!(native.engine(plan.settings.kind), EngineId::Distribution);
    opts.path_var = Some(OsString::new());
    assert!(matches!(
        choose_runner(&plan.settings, &opts),
        Err(DeployError::NativeNotFound { .. })
    ));
    opts.engine = Some(EngineId::Zot);
    assert!(choose_runner(&plan.settings, &opts).is_err());
    let zot =
        LocalPlan::from_registry_as(&r, &RenderOptions::default(), Some(NativeKind::Zot)).unwrap();
    assert_eq!(zot.settings.kind, NativeKind::Zot);
    opts.engine = Some(EngineId::Builtin);
    opts.builtin = None;
    assert!(matches!(
        choose_runner(&plan.settings, &opts),
        Err(DeployError::NoBuiltin)
    ));
}
