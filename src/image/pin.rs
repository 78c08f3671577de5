//! `Pin`: what a reference is fixed to once resolved, as a lock file records it and
//! `pack --locked` replays it: the top-level object (index or manifest) that `name@digest`
//! names, and the platform manifest chosen from it.

use super::ResolvedImage;
use crate::digest::Digest;
use crate::reference::Reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The top-level object (index or manifest).
    pub top: Digest,
    /// The platform manifest.
    pub manifest: Digest,
}

impl Pin {
    /// The pin of a resolved image.
    pub fn of(image: &ResolvedImage) -> Pin {
        Pin {
            top: image.top.digest.clone(),
            manifest: image.manifest.digest.clone(),
        }
    }

    /// `reference` pinned: the same name (tag kept) `@` the top-level digest.
    pub fn reference(&self, reference: &Reference) -> Reference {
        reference.with_digest(self.top.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_the_name_to_the_top_level_digest() {
        let pin = Pin {
            top: Digest::of(b"index"),
            manifest: Digest::of(b"manifest"),
        };
        let r: Reference = "redis:7".parse().unwrap();
        let pinned = pin.reference(&r);
        assert_eq!(pinned.digest(), Some(&pin.top));
        assert_eq!(pinned.tag(), Some("7"));
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/redis:7@{}", pin.top)
        );
    }
}
