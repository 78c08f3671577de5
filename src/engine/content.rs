//! What a containerd-store engine's content store holds, as far as airlock can know: the
//! engine API (1.45) cannot list that store, but an image there is named by its manifest (or
//! index) digest and keeps every blob that manifest names. So `remember` keeps the
//! manifests of the images `engine::load` loaded in airlock's cache (a few KB each), and
//! `known_blobs` reads back, for every image the engine still has, the blobs its manifest
//! names: `load` then leaves out the layers a full upgrade bundle shares with images already
//! there, not only those of images present whole. Best effort both ways: a cache that
//! cannot be read or written costs bytes sent, never a failed load.

use super::EngineState;
use crate::bundle::read::JSON_LIMIT;
use crate::digest::Digest;
use crate::image::{Index, Manifest};
use crate::source::Source;
use crate::store::Store;
use std::collections::HashSet;
use std::io::Read;

/// The stored bytes of `digest`, only when they are exactly that digest's.
fn stored(store: &Store, digest: &Digest) -> Option<Vec<u8>> {
    let bytes = store.read_small(digest, JSON_LIMIT).ok()?;
    (&Digest::of(&bytes) == digest).then_some(bytes)
}

/// The config and layers of the manifest `digest`, when the cache holds it.
fn manifest_blobs(store: &Store, digest: &Digest, out: &mut HashSet<Digest>) -> bool {
    let Some(bytes) = stored(store, digest) else {
        return false;
    };
    let Ok(m) = Manifest::parse(&bytes) else {
        return false;
    };
    out.insert(digest.clone());
    out.insert(m.config.digest);
    out.extend(m.layers.into_iter().map(|l| l.digest));
    true
}

/// Blobs in the content store of the engine `state` describes, known from the manifests
/// `remember` kept: for each of its images (by ID) whose manifest, or index and the platform
/// manifests under it, the cache holds. Empty on a classic-store engine.
pub fn known_blobs(store: &Store, state: &EngineState) -> HashSet<Digest> {
    let mut out = HashSet::new();
    if !state.containerd_store {
        return out;
    }
    for id in state.images.keys() {
        if manifest_blobs(store, id, &mut out) {
            continue;
        }
        let Some(index) = stored(store, id).and_then(|b| Index::parse(&b).ok()) else {
            continue;
        };
        // Only the platform manifests the cache holds: those airlock loaded.
        for m in &index.manifests {
            manifest_blobs(store, &m.digest, &mut out);
        }
    }
    out
}

/// Keep the top and platform manifests of `images` (read from `source`) in the cache, for
/// `known_blobs` on a later load. Errors are ignored: the cache only saves bytes later.
pub fn remember(store: &Store, source: &dyn Source, images: &[crate::bundle::meta::ImageMeta]) {
    for img in images {
        for d in [&img.top, &img.manifest] {
            if store.has(&d.digest, d.size) || d.size > JSON_LIMIT {
                continue;
            }
            let mut bytes = Vec::new();
            let read = source
                .open(&d.digest, 0)
                .ok()
                .and_then(|r| r.take(JSON_LIMIT).read_to_end(&mut bytes).ok());
            if read.is_some() && Digest::of(&bytes) == d.digest {
                let _ = store.put(&bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Descriptor;

    #[test]
    fn known_blobs_follow_stored_manifests_of_present_images() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = |n: u8| Digest::of(&[n]);
        let desc = |n: u8| Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", d(n), 1);
        let manifest = Manifest::docker_bytes(&desc(1), &[desc(2), desc(3)]);
        let m = store.put(&manifest).unwrap();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m.to_string(), "size": manifest.len()},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d(9).to_string(), "size": 5},
            ],
        }))
        .unwrap();
        let i = store.put(&index).unwrap();
        let image = |id: &Digest| {
            (
                id.clone(),
                crate::engine::EngineImage {
                    id: id.clone(),
                    repo_tags: Vec::new(),
                    layers: Vec::new(),
                },
            )
        };
        let mut state = EngineState {
            containerd_store: true,
            ..Default::default()
        };
        // An image the cache knows nothing of adds nothing.
        state.images.extend([image(&d(7))]);
        assert!(known_blobs(&store, &state).is_empty());
        // By manifest, and by index (its platform manifest in the cache).
        state.images.extend([image(&m)]);
        let want: HashSet<Digest> = [m.clone(), d(1), d(2), d(3)].into_iter().collect();
        assert_eq!(known_blobs(&store, &state), want);
        state.images.clear();
        state.images.extend([image(&i)]);
        assert_eq!(known_blobs(&store, &state), want);
        // The classic store: nothing (it skips by ChainID).
        state.containerd_store = false;
        assert!(known_blobs(&store, &state).is_empty());
    }
}
