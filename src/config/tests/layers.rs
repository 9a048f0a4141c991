//! The layers and what comes of them: defaults alone, a file, environment variables, the
//! lmms-eval shortcuts, and errors naming the key.

use super::load;
use crate::config::StepSettings;

#[test]
fn no_keys_means_the_rules_judge() {
    let s = load(&[], None).unwrap();
    assert!(s.rules_only);
    assert_eq!(
        s.routes["default"],
        vec![StepSettings {
            provider: "rules".into(),
            model: "rules".into()
        }]
    );
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
}

#[test]
fn lmms_eval_shortcuts_choose_the_default_route() {
    let s = load(
        &[
            ("API_TYPE", "openai"),
            ("MODEL_VERSION", "gpt-4o-mini"),
            ("OPENAI_API_KEY", "sk-test"),
            (
                "OPENAI_API_URL",
                "http://127.0.0.1:9000/v1/chat/completions",
            ),
        ],
        None,
    )
    .unwrap();
    assert!(!s.rules_only);
    assert_eq!(s.routes["default"][0].model, "gpt-4o-mini");
    assert_eq!(s.providers["openai"].base_url, "http://127.0.0.1:9000/v1");
    assert_eq!(
        s.providers["openai"].api_key.as_ref().unwrap().expose(),
        "sk-test"
    );
    // a key alone enables the provider as the default
    let s = load(&[("ANTHROPIC_API_KEY", "k")], None).unwrap();
    assert_eq!(s.routes["default"][0].provider, "anthropic");
}

#[test]
fn layering_file_then_env() {
    let file = r#"
        [providers.local]
        kind = "openai"
        base_url = "http://127.0.0.1:11434/v1"
        [routes]
        default = ["local:llama3.1:8b", "rules"]
    "#;
    let s = load(
        &[(
            "LLM_JUDGE__PROVIDERS__LOCAL__BASE_URL",
            "http://127.0.0.1:9000/v1",
        )],
        Some(file),
    )
    .unwrap();
    assert_eq!(s.providers["local"].base_url, "http://127.0.0.1:9000/v1");
    assert_eq!(
        s.routes["default"][0],
        StepSettings {
            provider: "local".into(),
            model: "llama3.1:8b".into()
        }
    );
    assert_eq!(s.routes["default"][1].provider, "rules");
    let s = load(
        &[("LLM_JUDGE__ROUTES__DEFAULT", "openai:gpt-4o, rules")],
        None,
    )
    .unwrap();
    assert_eq!(s.routes["default"].len(), 2);
}

#[test]
fn invalid_files_name_the_key() {
    let e = load(&[], Some("[server]\nlisten = \"nope\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.listen"), "{e}");
    let e = load(&[], Some("[providers.x]\nkind = \"openai\"\nbogus = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
    let e = load(&[], Some("[routes]\ndefault = [\"nobody:m\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("routes.default") && e.contains("nobody"), "{e}");
    let e = load(&[], Some("[providers.x]\nkind = \"telepathy\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("telepathy"), "{e}");
    let e = load(&[("API_TYPE", "nobody")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("API_TYPE"), "{e}");
}

#[test]
fn secrets_do_not_print() {
    let s = load(&[("OPENAI_API_KEY", "sk-very-secret")], None).unwrap();
    assert!(!format!("{s:?}").contains("sk-very-secret"));
}
