//! Feeds arbitrary text through `Reference::parse`: never a panic, and a parsed reference's
//! normalised form (and its familiar tagged form, when it has one) parses back to the same
//! registry, repository, tag and digest, and normalises to itself.
#![no_main]

use airlock::reference::Reference;
use libfuzzer_sys::fuzz_target;

fn same(a: &Reference, b: &Reference, via: &str) {
    assert_eq!(a.registry(), b.registry(), "registry via {via}");
    assert_eq!(a.repository(), b.repository(), "repository via {via}");
    assert_eq!(a.tag_or_default(), b.tag_or_default(), "tag via {via}");
    assert_eq!(a.normalized(), b.normalized(), "normalized via {via}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = Reference::parse(text) else {
        return;
    };
    let n = r.normalized();
    let again = Reference::parse(&n)
        .unwrap_or_else(|e| panic!("{text:?} normalises to {n:?}, which does not parse: {e}"));
    same(&r, &again, &n);
    assert_eq!(again.digest(), r.digest());
    if let Some(familiar) = r.familiar_tagged() {
        let back = Reference::parse(&familiar)
            .unwrap_or_else(|e| panic!("{text:?}: familiar form {familiar:?} does not parse: {e}"));
        assert_eq!(back.name(), r.name(), "name via {familiar}");
        assert_eq!(back.tag_or_default(), r.tag_or_default());
    }
    let _ = (
        r.wire_reference(),
        r.api_host(),
        r.pinned(),
        r.familiar_name(),
    );
});
