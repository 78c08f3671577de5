//! Integration tests, built into one binary. Each module is one area:
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::disallowed_macros
)] // tests may use std::fs and println!; src/ may not (clippy.toml)
mod compose; // compose::load on synthetic and real compose files
mod delta; // delta bundles: pack --since, verify --base, diff, load/up over v1, docker load -i, refused without v1
mod docs; // docs/reliability.md names every test of the reliability modules, and no test that is gone
mod doctor; // airlock doctor: engine, store, Compose CLIs and capabilities as the engine under test has them; exit 3 without one
mod errors;
mod faults; // kill -9 of pack/load/push at many points, disk full, engine cut off during load/up
mod harness; // shared: engine check, loopback registry, test images
mod hostile; // hostile bundles: .., absolute, links, devices, duplicates, 100 MB JSON; refused by name
mod offline; // verify, inspect, load, up, check against the engine and docker-compose
mod oracle; // Compose v2 (`docker compose config`) as the oracle for compose::load: every fixture, semantics
mod pack; // airlock pack/lock: docker load of the bundle, --from-docker, TLS+Basic, multi-platform, lock
mod patch; // patch bundles: pack --since makes layer patches; inspect/diff/verify show and prove them; load/up rebuild them on both stores; corrupt patch, wrong base, kill -9 while rebuilding
mod plan; // airlock plan: fixture walk, bad input, Frappe example, JSON snapshot
mod push; // airlock push: plain (prefix, chunks, mounts) and TLS+Basic into docker-registry, digests kept, second push uploads nothing
mod reference; // Reference::parse property tests (no panics, normalised form is a fixed point)
mod registry; // registry faults through a loopback proxy: cut mid-blob, wrong bytes, 429, kill -9
mod serve; // airlock serve: engine pull, compose v1 up, skopeo, ranges, writes refused, TLS+auth, path fuzzing
mod sign; // signed bundles: key generate, pack --sign, verify/load --key, minisign tool, tampering
mod split; // split bundles: pack --split-size, cat, verify/inspect/load from parts, missing and corrupt parts named
mod swarm; // airlock up/check/plan --swarm on real swarms: single node (refusals, deploy from serve, no-op rerun, task pulls again, delta rolling update, serve down named, unit, --registry) and two engines (host manager, Engine 26 worker) // the error surface: a closed stdout pipe ends quietly, not-a-tar is named, hint after message, exit classes
