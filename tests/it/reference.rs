//! Property tests for `Reference::parse` (shared by every command): no panics on arbitrary
//! input, and the normalised form is a fixed point (it re-parses to itself).

use airlock::reference::Reference;
use proptest::prelude::*;

/// Strings shaped like references: optional host, path components, optional tag and digest,
/// with the separators the grammar allows (and some it does not).
fn reference_like() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just(String::new()),
        Just("localhost/".to_string()),
        Just("localhost:5000/".to_string()),
        Just("docker.io/".to_string()),
        Just("index.docker.io/".to_string()),
        "[a-z][a-z0-9-]{0,8}\\.[a-z]{2,4}(:[0-9]{1,5})?/",
        "\\[::1\\]:[0-9]{2,4}/",
    ];
    let component = "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}";
    let path = proptest::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    let tag = prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}".prop_map(|t| format!(":{t}"))
    ];
    let digest = prop_oneof![
        Just(String::new()),
        "[0-9a-f]{64}".prop_map(|h| format!("@sha256:{h}"))
    ];
    (host, path, tag, digest).prop_map(|(h, p, t, d)| format!("{h}{p}{t}{d}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_any_string(s in "\\PC{0,80}") {
        let _ = Reference::parse(&s);
    }

    #[test]
    fn never_panics_on_reference_alphabet(s in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            let again = Reference::parse(&r.normalized()).expect("normalized form parses");
            prop_assert_eq!(again.normalized(), r.normalized());
        }
    }

    #[test]
    fn normalized_is_a_fixed_point(s in reference_like()) {
        if let Ok(r) = Reference::parse(&s) {
            let n = r.normalized();
            let again = Reference::parse(&n).unwrap_or_else(|e| panic!("{s} -> {n} does not re-parse: {e}"));
            prop_assert_eq!(again.normalized(), n.clone());
            prop_assert_eq!(again.registry(), r.registry());
            prop_assert_eq!(again.repository(), r.repository());
            prop_assert_eq!(again.digest(), r.digest());
            prop_assert_eq!(again.pinned(), r.pinned());
            // The original text is kept as written.
            prop_assert_eq!(r.original(), s.as_str());
        }
    }

    #[test]
    fn well_formed_names_parse(p in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", t in "[a-z0-9][a-z0-9.-]{0,10}") {
        let s = format!("{p}:{t}");
        let r = Reference::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        prop_assert_eq!(r.tag(), Some(t.as_str()));
        let n = r.normalized();
        let plain = format!("/{p}:{t}");
        let library = format!("/library/{p}:{t}");
        prop_assert!(n.ends_with(&plain) || n.ends_with(&library), "{} -> {}", s, n);
    }
}
