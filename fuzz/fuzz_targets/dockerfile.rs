//! Feeds arbitrary text through `dockerfile::analyze` (with and without a target, build args and
//! another platform): every input must give an `Analysis` or an `Error`, never a panic or a hang,
//! and a successful analysis must be consistent (the target is needed, stage indices in range).
#![no_main]

use airlock::dockerfile::{self, Base, Options, Use};
use libfuzzer_sys::fuzz_target;

fn check(text: &str, opts: &Options) {
    let Ok(a) = dockerfile::analyze(text, opts) else { return };
    assert!(a.target < a.stages.len());
    assert!(a.stages[a.target].needed);
    for (i, s) in a.stages.iter().enumerate() {
        if let Base::Stage(b) = s.base {
            assert!(b < i, "a stage is based on an earlier stage");
            if s.needed {
                assert!(a.stages[b].needed, "the base of a needed stage is needed");
            }
        }
    }
    for u in &a.images {
        assert!(!u.reference.is_empty());
        match u.kind {
            Use::Syntax => assert!(u.stage.is_none()),
            Use::From | Use::CopyFrom => assert!(u.stage.is_some_and(|s| a.stages[s].needed)),
            Use::UnusedStage => assert!(u.stage.is_some_and(|s| !a.stages[s].needed)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text, &Options::default());
    // The last word of the text as a target (often a stage name), with build args and arm/v7.
    let target = text.split_whitespace().last().map(str::to_string);
    let opts = Options {
        target,
        build_args: [("BASE", "alpine:3"), ("V", "1"), ("BUILDKIT_SYNTAX", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        platform: "linux/arm/v7".parse().expect("platform"),
        ..Options::default()
    };
    check(text, &opts);
});
