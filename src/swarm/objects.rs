//! The Swarm configs and secrets of a stack: the top-level `configs:`/`secrets:` definitions
//! the services use, as the stack file declares them. A `file:` one is named
//! `<stack>_<name>_<first 12 hex digits of the file's sha256>` unless the project names it:
//! Swarm objects cannot change, so an upgrade that changes the file deploys a new object
//! instead of failing. `external` ones are declared as such. Reads the files (streamed, to
//! hash them); `plan::swarm` refuses the rest (`environment:`, `content:`, undefined) first.

use super::SwarmError;
use crate::compose::Project;
use serde_json::{Map, Value, json};

/// Top-level keys of a config and a secret that compose file format 3.8 reads.
const CONFIG_KEYS: &[&str] = &["file", "external", "name", "labels", "template_driver"];
const SECRET_KEYS: &[&str] = &[
    "file",
    "external",
    "name",
    "labels",
    "driver",
    "driver_opts",
    "template_driver",
];

/// The stack file's top-level `configs:` and `secrets:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    pub configs: Map<String, Value>,
    pub secrets: Map<String, Value>,
}

/// The definitions of every config and secret the services of `project` use, for stack
/// `stack`. A file that cannot be read is an error naming it (nothing is deployed).
pub fn definitions(project: &Project, stack: &str) -> Result<Objects, SwarmError> {
    let mut out = Objects::default();
    for svc in project.services.values() {
        for (kind, section, defined, keys) in [
            (
                "config",
                "configs",
                &project.definitions.configs,
                CONFIG_KEYS,
            ),
            (
                "secret",
                "secrets",
                &project.definitions.secrets,
                SECRET_KEYS,
            ),
        ] {
            let into = if kind == "config" {
                &mut out.configs
            } else {
                &mut out.secrets
            };
            for source in crate::plan::swarm::used_objects(svc.raw.get(section)) {
                if into.contains_key(source) {
                    continue;
                }
                let Some(Value::Object(def)) = defined.get(source) else {
                    continue;
                };
                let mut kept: Map<String, Value> = def
                    .iter()
                    .filter(|(k, _)| keys.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(file) = def.get("file").and_then(|f| f.as_str())
                    && !kept.contains_key("name")
                    && !def.contains_key("external")
                {
                    let hex = file_hash(file).map_err(|e| SwarmError::ObjectFile {
                        kind: kind.to_string(),
                        name: source.to_string(),
                        path: file.into(),
                        message: e.to_string(),
                    })?;
                    kept.insert(
                        "name".into(),
                        json!(format!("{stack}_{source}_{}", &hex[..12])),
                    );
                }
                into.insert(source.to_string(), Value::Object(kept));
            }
        }
    }
    Ok(out)
}

/// The sha256 of a file, hex, read in a stream.
fn file_hash(path: &str) -> std::io::Result<String> {
    let f = fs_err::File::open(path)?;
    let (digest, _) = crate::digest::hash_reader(std::io::BufReader::new(f))?;
    Ok(digest.hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_objects_are_named_by_content_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("motd"), "hello\n").unwrap();
        fs_err::write(dir.path().join("token"), "s3cret").unwrap();
        let p = crate::compose::load_text(
            dir.path(),
            "services:\n  web:\n    image: nginx:1\n    configs: [motd, {source: fixed, target: /etc/f}]\n    secrets: [token, ext]\n  other:\n    image: nginx:1\n    configs: [motd]\nconfigs:\n  motd: {file: ./motd, labels: {a: b}, x-note: 1}\n  fixed: {file: ./motd, name: given}\n  unused: {file: ./nothing}\nsecrets:\n  token: {file: ./token}\n  ext: {external: true, name: site-token}\n",
        );
        let o = definitions(&p, "shop").unwrap();
        let motd = dir.path().join("motd");
        let short = |bytes: &[u8]| crate::digest::Digest::of(bytes).hex()[..12].to_string();
        assert_eq!(
            Value::Object(o.configs.clone()),
            json!({
                "motd": {"file": motd.to_str().unwrap(), "labels": {"a": "b"}, "name": format!("shop_motd_{}", short(b"hello\n"))},
                "fixed": {"file": motd.to_str().unwrap(), "name": "given"},
            })
        );
        assert_eq!(
            o.secrets["token"],
            json!({"file": dir.path().join("token").to_str().unwrap(), "name": format!("shop_token_{}", short(b"s3cret"))})
        );
        assert_eq!(
            o.secrets["ext"],
            json!({"external": true, "name": "site-token"})
        );

        // A file gone: an error naming the secret and the file.
        fs_err::remove_file(dir.path().join("token")).unwrap();
        let e = definitions(&p, "shop").unwrap_err().to_string();
        assert!(e.contains("secret `token`") && e.contains("token"), "{e}");
    }
}
