//! Patch bundles against the real engine and a loopback registry: v1 = {base, web:1}, v2 =
//! {base, web:2} packed `--since v1`, where web:2's top layer is web:1's with a few bytes of
//! an 8 MiB file changed, so v2 carries that layer as a patch. `inspect` and `diff` show
//! it; `verify` (alone and `--base v1`) proves it; a corrupt patch is refused by `verify`
//! and by `load` before the engine sees anything; a wrong base is refused before anything
//! is loaded, naming the layer; `kill -9` while the layer is rebuilt leaves the engine
//! without web:2 and a re-run loads it (base layers exported from the engine); `up --base
//! v1` rebuilds from the base bundle and runs web:2.

use crate::harness::{self, ComposeCleanup as Cleanup, Registry, TestImages, json_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// 64 KiB of pseudo-random bytes repeated to `copies` blocks: gzip (32 KiB window) cannot
/// shrink it, a patch against a similar file can.
fn data(copies: usize, changed: bool) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let block: Vec<u8> = (0..65536)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let mut out = block.repeat(copies);
    if changed {
        let mid = out.len() / 2;
        for b in &mut out[mid..mid + 300] {
            *b ^= 0x5a;
        }
    }
    out
}

/// (member name, offset of its data, size) of every member of a tar.
fn member_offsets(bundle: &Path) -> Vec<(String, u64, u64)> {
    let mut ar = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().to_string(),
                e.raw_file_position(),
                e.size(),
            )
        })
        .collect()
}

fn bundle_json(bundle: &Path) -> serde_json::Value {
    let mut ar = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    serde_json::from_reader(e).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Run `airlock load ARGS` and kill it (-9) once the rebuilt layer is being written into
/// the cache (`ingest/<diff_id>.partial`); `true` when it was killed there, `false` when it
/// finished first.
fn kill_while_rebuilding(cache: &Path, bundle: &Path, diff_id_hex: &str) -> bool {
    let bin = assert_cmd::cargo::cargo_bin("airlock");
    let mut child = Command::new(bin)
        .env("AIRLOCK_CACHE", cache)
        .arg("load")
        .arg(bundle)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = cache.join(format!("ingest/{diff_id_hex}.partial"));
    let started = Instant::now();
    loop {
        if partial.exists() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Build `airlock-it/NAME/web:1` and `:2` on `base`: web:2's top layer is web:1's with 300
/// bytes of an 8 MiB file changed (and `/srv/version`). Returns the two local tags.
fn build_web_versions(name: &str, base: &str) -> (String, String) {
    let ctx = tempfile::tempdir().unwrap();
    let tags = (
        format!("airlock-it/{name}/web:1"),
        format!("airlock-it/{name}/web:2"),
    );
    for (tag, n) in [(&tags.0, 1), (&tags.1, 2)] {
        let dir = ctx.path().join(format!("v{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.bin"), data(128, n == 2)).unwrap();
        std::fs::write(dir.join("version"), format!("version {n}\n")).unwrap();
        std::fs::write(
            ctx.path().join(format!("Dockerfile.{n}")),
            format!("FROM {base}\nCOPY v{n}/ /srv/\n"),
        )
        .unwrap();
        harness::docker_build(
            ctx.path(),
            tag,
            Some(&ctx.path().join(format!("Dockerfile.{n}"))),
        );
    }
    tags
}

/// `airlock up BUNDLE --base BASE --dir DIR`, which must succeed.
fn up_with_base(cache: &Path, bundle: &Path, base: &Path, dir: &Path) {
    let up = harness::airlock(cache)
        .arg("up")
        .arg(bundle)
        .arg("--base")
        .arg(base)
        .arg("--dir")
        .arg(dir)
        .args(["--timeout", "60s", "--json"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        stderr(&up)
    );
}

const COMPOSE: &str = "services:\n  web:\n    image: ${WEB}\n    command: [\"/bin/sh\", \"-c\", \"cat /srv/version; exec sleep 3600\"]\n";

#[test]
fn patch_bundle_packs_verifies_and_loads_on_both_stores() {
    if !harness::require_docker() {
        return;
    }
    let images = TestImages::build("patch");
    let reg = Registry::start();
    let (web1_local, web2_local) = build_web_versions("patch", &images.base);
    let (web1_local, web2_local) = (web1_local.as_str(), web2_local.as_str());
    let base = reg.push(&images.base, &images.base);
    let web1 = reg.push(web1_local, web1_local);
    let web2 = reg.push(web2_local, web2_local);
    let _cleanup = Cleanup {
        project: "airlock-it-patch".into(),
        images: vec![
            web1_local.to_string(),
            web2_local.to_string(),
            base.clone(),
            web1.clone(),
            web2.clone(),
        ],
    };

    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (d1, d2) = (
        work.path().join("v1/airlock-it-patch"),
        work.path().join("v2/airlock-it-patch"),
    );
    for (d, web) in [(&d1, &web1), (&d2, &web2)] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("compose.yaml"), COMPOSE).unwrap();
        std::fs::write(d.join(".env"), format!("WEB={web}\n")).unwrap();
    }
    let v0 = work.path().join("v0.tar");
    let v1 = work.path().join("v1.tar");
    let v2 = work.path().join("v2.tar");
    let whole = work.path().join("v2-whole.tar");
    harness::ok(
        harness::airlock(&cache)
            .current_dir(work.path())
            .args(["pack", "--image", &base, "-o"])
            .arg(&v0),
    );
    harness::ok(
        harness::airlock(&cache)
            .current_dir(&d1)
            .args(["pack", "--image", &base, "-o"])
            .arg(&v1),
    );
    let packed = harness::ok(
        harness::airlock(&cache)
            .current_dir(&d2)
            .args(["pack", "--image", &base, "--json", "--since"])
            .arg(&v1)
            .arg("-o")
            .arg(&v2),
    );
    harness::ok(
        harness::airlock(&cache)
            .current_dir(&d2)
            .args(["pack", "--image", &base, "--no-patch", "--since"])
            .arg(&v1)
            .arg("-o")
            .arg(&whole),
    );

    // The same upgrade with the service pinned by digest (`web@sha256:...`).
    let web2_top = bundle_json(&v2)["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == web2.as_str())
        .unwrap()["top"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let web2_pinned = format!("{}@{web2_top}", web2.rsplit_once(':').unwrap().0);
    let d3 = work.path().join("v3/airlock-it-patch-pin");
    std::fs::create_dir_all(&d3).unwrap();
    std::fs::write(d3.join("compose.yaml"), COMPOSE).unwrap();
    std::fs::write(d3.join(".env"), format!("WEB={web2_pinned}\n")).unwrap();
    let v3 = work.path().join("v3.tar");
    harness::ok(
        harness::airlock(&cache)
            .current_dir(&d3)
            .args(["pack", "--image", &base, "--since"])
            .arg(&v1)
            .arg("-o")
            .arg(&v3),
    );
    assert_eq!(
        bundle_json(&v3)["base"]["patches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The patch: web:2's top layer, against web:1's top layer; the layer is not carried.
    let meta2 = bundle_json(&v2);
    let patches = meta2["base"]["patches"].as_array().unwrap().clone();
    assert_eq!(patches.len(), 1, "{:#}", meta2["base"]);
    let p = &patches[0];
    assert_eq!(p["image"], web2.as_str());
    let web2_meta = meta2["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == web2.as_str())
        .unwrap()
        .clone();
    let top = web2_meta["layers"].as_array().unwrap().len() - 1;
    assert_eq!(p["index"], top);
    assert_eq!(p["layer"], web2_meta["layers"][top]["digest"]);
    assert_eq!(p["diff_id"], web2_meta["layers"][top]["diff_id"]);
    assert_eq!(p["base"]["image"], web1.as_str());
    let packed = json_of(&packed);
    assert_eq!(packed["patches"].as_array().unwrap().len(), 1, "{packed:#}");
    let names: Vec<String> = member_offsets(&v2).into_iter().map(|m| m.0).collect();
    let hex = |v: &serde_json::Value| {
        v.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    assert!(!names.contains(&format!("blobs/sha256/{}", hex(&p["layer"]))));
    assert!(names.contains(&format!("blobs/sha256/{}", hex(&p["patch"]["digest"]))));
    assert!(
        meta2["base"]["patches"].to_string().len() > 10
            && bundle_json(&whole)["base"]["patches"].is_null(),
        "--no-patch makes no patch"
    );
    let (patch_size, layer_size) = (
        p["patch"]["size"].as_u64().unwrap(),
        p["layer_size"].as_u64().unwrap(),
    );
    assert!(patch_size * 2 < layer_size, "{p:#}");
    let (v2_len, whole_len) = (
        std::fs::metadata(&v2).unwrap().len(),
        std::fs::metadata(&whole).unwrap().len(),
    );
    eprintln!(
        "patch bundle: {v2_len} bytes, whole-layer delta: {whole_len} bytes; patch {patch_size} for a {layer_size}-byte layer"
    );
    assert!(v2_len * 2 < whole_len);

    // inspect and diff show it.
    let out = harness::ok(
        harness::airlock(&cache)
            .arg("inspect")
            .arg(&v2)
            .arg("--json"),
    );
    assert_eq!(json_of(&out)["patches"][0]["patch"], p["patch"]);
    let out = harness::ok(
        harness::airlock(&cache)
            .arg("diff")
            .arg(&v1)
            .arg(&v2)
            .arg("--json"),
    );
    let d = json_of(&out);
    let new: Vec<&serde_json::Value> = d["new_layers"].as_array().unwrap().iter().collect();
    let patched = new.iter().find(|l| l["digest"] == p["layer"]).unwrap();
    assert_eq!(patched["patch_size"], patch_size);
    assert_eq!(patched["size"], layer_size);
    assert_eq!(d["layers"]["patched"], 1, "{d:#}");

    // verify alone (headers) and with the base (every patch rebuilt to its diff_id).
    for extra in [None, Some(&v1)] {
        let mut cmd = harness::airlock(&cache);
        cmd.arg("verify").arg(&v2).arg("--json");
        if let Some(b) = extra {
            cmd.arg("--base").arg(b);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // A base of another version: the patch's base layer is not in it.
    let out = harness::airlock(&cache)
        .arg("verify")
        .arg(&v2)
        .arg("--json")
        .arg("--base")
        .arg(&v0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert!(
        v["problems"]
            .to_string()
            .contains(&hex(&p["patch"]["digest"])),
        "{v:#}"
    );

    // A corrupt patch (one byte of its body flipped): refused by verify, and by load
    // before the engine sees anything.
    let corrupt = work.path().join("v2-corrupt.tar");
    std::fs::copy(&v2, &corrupt).unwrap();
    let (_, at, size) = member_offsets(&corrupt)
        .into_iter()
        .find(|m| m.0.ends_with(&hex(&p["patch"]["digest"])))
        .unwrap();
    {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&corrupt)
            .unwrap();
        let pos = at + size - size / 3;
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(pos)).unwrap();
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(pos)).unwrap();
        f.write_all(&[b[0] ^ 0xff]).unwrap();
    }
    let out = harness::airlock(&cache)
        .arg("verify")
        .arg(&corrupt)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_of(&out)["problems"]
            .to_string()
            .contains(&hex(&p["patch"]["digest"]))
    );

    // Offline: no local copies of the images.
    drop(reg);
    for i in &_cleanup.images {
        harness::docker_quiet(&["rmi", "-f", i]);
    }
    images.remove(&[]);

    // v1 on the engine, then the corrupt patch bundle: refused, web:2 never appears.
    harness::ok(harness::airlock(&cache).arg("load").arg(&v1));
    let out = harness::airlock(&cache)
        .arg("load")
        .arg(&corrupt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&web2), "{}", stderr(&out));
    assert!(!harness::image_exists(&web2));

    // A wrong base bundle (v0: the base image only): refused before anything is loaded,
    // naming web:2's layer and the base layer it needs.
    let out = harness::airlock(&cache)
        .arg("load")
        .arg(&v2)
        .arg("--base")
        .arg(&v0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("layer {top} of `{web2}`"))
            && err.contains(p["base"]["diff_id"].as_str().unwrap()),
        "{err}"
    );
    assert!(!harness::image_exists(&web2));

    // Without --base and without web:1 on the engine: refused before anything is loaded.
    harness::docker_quiet(&["rmi", "-f", &web1]);
    let out = harness::airlock(&cache)
        .arg("load")
        .arg(&v2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    if harness::engine().classic() {
        // The base layers the delta assumes are there; the one the patch needs is not.
        assert!(
            err.contains(&format!("layer {top} of `{web2}`")) && err.contains("the engine"),
            "{err}"
        );
    } else {
        // Engine-specific: the containerd store first needs every base image by ID.
        assert!(err.contains(&web1), "{err}");
    }
    assert!(!harness::image_exists(&web2));
    harness::ok(harness::airlock(&cache).arg("load").arg(&v1));

    // kill -9 while the layer is rebuilt (base layers exported from the engine): the engine
    // has no web:2; a re-run completes.
    let diff_hex = hex(&p["diff_id"]);
    let mut killed = false;
    for _ in 0..3 {
        if kill_while_rebuilding(&cache, &v2, &diff_hex) {
            killed = true;
            break;
        }
        // It finished before the kill: start again from an engine without web:2.
        harness::docker_quiet(&["rmi", "-f", &web2]);
    }
    assert!(killed, "the load was never caught rebuilding");
    assert!(
        !harness::image_exists(&web2),
        "web:2 appeared after kill -9"
    );
    let out = harness::ok(harness::airlock(&cache).arg("load").arg(&v2).arg("--json"));
    let l = json_of(&out);
    assert_eq!(l["sent"], true, "{l:#}");
    assert_eq!(l["rebuilt"], 1, "{l:#}");
    assert_eq!(
        harness::docker(&["run", "--rm", &web2, "cat", "/srv/version"]),
        "version 2"
    );
    if harness::engine().classic() {
        // The classic store keeps the image ID (the config digest).
        let id = harness::docker(&["image", "inspect", "-f", "{{.Id}}", &web2]);
        assert_eq!(id, web2_meta["config"]["digest"].as_str().unwrap());
    }
    let rebuilt: PathBuf = cache.join(format!("blobs/sha256/{diff_hex}"));
    assert!(
        !rebuilt.exists(),
        "the rebuilt layer is removed once loaded"
    );

    // up with the base bundle: rebuilt from v1, started.
    harness::docker_quiet(&["rmi", "-f", &web2]);
    let dir = work.path().join("offline");
    up_with_base(&cache, &v2, &v1, &dir);
    let ps = harness::docker(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=airlock-it-patch",
        "--filter",
        "label=com.docker.compose.service=web",
    ]);
    assert!(!ps.is_empty());
    assert_eq!(harness::docker(&["logs", &ps]), "version 2");

    drop(_cleanup);

    // serve (the base bundle served too) and push (`--base`, not pushed): the engine pulls
    // web:2 with its rebuilt layer and runs it.
    let (addr, mut serve) = start_serve(&cache, &[&v2, &v1]);
    let served = format!("{addr}/airlock-it/patch/web:2");
    harness::docker_quiet(&["rmi", "-f", &web2, &web1, &base]);
    harness::docker(&["pull", &served]);
    assert_eq!(
        harness::docker(&["run", "--rm", &served, "cat", "/srv/version"]),
        "version 2"
    );
    harness::docker_quiet(&["rmi", "-f", &served]);
    let _ = serve.kill();
    let _ = serve.wait();
    let reg = Registry::start();
    harness::ok(
        harness::airlock(&cache)
            .arg("push")
            .arg(&v2)
            .arg("--base")
            .arg(&v1)
            .arg("--to")
            .arg(reg.url().trim_start_matches("http://")),
    );
    let pushed = format!(
        "{}/airlock-it/patch/web:2",
        reg.url().trim_start_matches("http://")
    );
    harness::docker(&["pull", &pushed]);
    assert_eq!(
        harness::docker(&["run", "--rm", &pushed, "cat", "/srv/version"]),
        "version 2"
    );
    harness::docker_quiet(&["rmi", "-f", &pushed]);

    // A digest-pinned reference of a patched image: `up` maps the service to the local tag
    // `load` gives it (the rewritten manifest has another digest on the containerd store).
    let _pin_cleanup = Cleanup {
        project: "airlock-it-patch-pin".into(),
        images: vec![web2.clone(), web1.clone(), base.clone()],
    };
    harness::ok(harness::airlock(&cache).arg("load").arg(&v1));
    up_with_base(&cache, &v3, &v1, &work.path().join("offline-pin"));
    let ps = harness::docker(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=airlock-it-patch-pin",
    ]);
    assert!(!ps.is_empty());
    assert_eq!(harness::docker(&["logs", &ps]), "version 2");
    let pinned_tag = format!(
        "{}:airlock-{}",
        web2.rsplit_once(':').unwrap().0,
        &web2_top.trim_start_matches("sha256:")[..12]
    );
    let image = harness::docker(&["inspect", "-f", "{{.Config.Image}}", &ps]);
    assert_eq!(image, pinned_tag);
    harness::docker_quiet(&["rmi", "-f", &pinned_tag]);
}

/// `airlock serve BUNDLES` on a free loopback port with its own cache: (host:port, child).
fn start_serve(cache: &Path, bundles: &[&Path]) -> (String, std::process::Child) {
    use std::io::BufRead;
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .env("AIRLOCK_CACHE", cache)
        .arg("serve")
        .args(bundles)
        .args(["--addr", "127.0.0.1:0", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(!line.is_empty(), "serve did not start");
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    (doc["listen"].as_str().unwrap().to_string(), child)
}

/// `pack --since` a bundle.json alone (what an operator keeps after shipping v1), with the
/// cache cleared: the base layer the patch needs is fetched from the base image's
/// repository, so v2 still carries web:2's top layer as a patch, much smaller than the
/// `--no-patch` delta, and it loads over v1 with `--base v1`. A base layer the registry
/// does not have is carried whole, with a warning naming the layer and why.
#[test]
fn patch_since_bundle_json_fetches_the_base_layer() {
    if !harness::require_docker() {
        return;
    }
    let images = TestImages::build("patchjson");
    let reg = Registry::start();
    let (web1_local, web2_local) = build_web_versions("patchjson", &images.base);
    let (web1_local, web2_local) = (web1_local.as_str(), web2_local.as_str());
    let web1 = reg.push(web1_local, web1_local);
    let web2 = reg.push(web2_local, web2_local);
    let _cleanup = Cleanup {
        project: "airlock-it-patchjson".into(),
        images: vec![
            web1_local.to_string(),
            web2_local.to_string(),
            web1.clone(),
            web2.clone(),
        ],
    };

    let work = tempfile::tempdir().unwrap();
    let cache1 = work.path().join("cache1");
    let v1 = work.path().join("v1.tar");
    harness::ok(
        harness::airlock(&cache1)
            .args(["pack", "--image", &web1, "-o"])
            .arg(&v1),
    );
    // Only v1's bundle.json is kept; the cache that packed v1 is gone.
    let v1_json = work.path().join("v1.bundle.json");
    std::fs::write(&v1_json, bundle_json(&v1).to_string()).unwrap();
    std::fs::remove_dir_all(&cache1).unwrap();

    let cache2 = work.path().join("cache2");
    let v2 = work.path().join("v2.tar");
    let whole = work.path().join("v2-whole.tar");
    let packed = harness::ok(
        harness::airlock(&cache2)
            .args(["pack", "--image", &web2, "--json", "--since"])
            .arg(&v1_json)
            .arg("-o")
            .arg(&v2),
    );
    assert!(
        !stderr(&packed).contains("carried whole"),
        "{}",
        stderr(&packed)
    );
    harness::ok(
        harness::airlock(&cache2)
            .args(["pack", "--image", &web2, "--no-patch", "--since"])
            .arg(&v1_json)
            .arg("-o")
            .arg(&whole),
    );
    let meta1 = bundle_json(&v1);
    let meta2 = bundle_json(&v2);
    let web1_layers = meta1["images"][0]["layers"].as_array().unwrap().clone();
    let web2_layers = meta2["images"][0]["layers"].as_array().unwrap().clone();
    let top = web2_layers.len() - 1;
    let patches = meta2["base"]["patches"].as_array().unwrap().clone();
    assert_eq!(patches.len(), 1, "{:#}", meta2["base"]);
    let p = &patches[0];
    assert_eq!(p["image"], web2.as_str());
    assert_eq!(p["index"], top);
    assert_eq!(p["layer"], web2_layers[top]["digest"]);
    assert_eq!(p["base"]["image"], web1.as_str());
    assert_eq!(p["base"]["layer"], web1_layers[top]["digest"]);
    // The base layer came from the registry into the (cleared) cache.
    let base_hex = p["base"]["layer"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    assert!(
        cache2.join("blobs/sha256").join(&base_hex).exists(),
        "base layer {base_hex} not in the cache"
    );
    let (v2_len, whole_len) = (
        std::fs::metadata(&v2).unwrap().len(),
        std::fs::metadata(&whole).unwrap().len(),
    );
    eprintln!("patch bundle over bundle.json: {v2_len} bytes, --no-patch delta: {whole_len} bytes");
    assert!(v2_len * 4 < whole_len, "{v2_len} vs {whole_len}");

    // It proves and loads over v1 with the base bundle.
    harness::ok(
        harness::airlock(&cache2)
            .arg("verify")
            .arg(&v2)
            .arg("--base")
            .arg(&v1),
    );
    let offline = work.path().join("offline-cache");
    harness::docker_quiet(&["rmi", "-f", &web1, &web2]);
    harness::ok(harness::airlock(&offline).arg("load").arg(&v1));
    harness::ok(
        harness::airlock(&offline)
            .arg("load")
            .arg(&v2)
            .arg("--base")
            .arg(&v1),
    );
    assert_eq!(
        harness::docker(&["run", "--rm", &web2, "cat", "/srv/version"]),
        "version 2"
    );

    // A base layer the registry does not have (its digest changed in the bundle.json):
    // the layer is carried whole, and pack says which and why.
    let mut bad = meta1.clone();
    let bogus = format!("sha256:{}", "0".repeat(64));
    bad["images"][0]["layers"][top]["digest"] = serde_json::Value::String(bogus.clone());
    let bad_json = work.path().join("v1-bad.bundle.json");
    std::fs::write(&bad_json, bad.to_string()).unwrap();
    let v2_bad = work.path().join("v2-bad.tar");
    let out = harness::ok(
        harness::airlock(&cache2)
            .args(["pack", "--image", &web2, "--since"])
            .arg(&bad_json)
            .arg("-o")
            .arg(&v2_bad),
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("layer {top} of `{web2}` is carried whole"))
            && err.contains(&bogus)
            && err.contains("registry"),
        "{err}"
    );
    assert!(bundle_json(&v2_bad)["base"]["patches"].is_null());
}
