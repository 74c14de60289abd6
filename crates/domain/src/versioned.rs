//! Versioned data loaded from files (instruments, protocols): every version
//! kept, the highest one current, and a published version never changing.

use std::collections::BTreeMap;
use std::sync::Arc;

/// What a versioned file gives: its id, version and content hash.
pub trait Versioned {
    fn id(&self) -> &str;
    fn version(&self) -> u32;
    fn hash(&self) -> &str;
}

#[derive(Debug, Clone)]
pub struct Versions<T> {
    map: BTreeMap<(String, u32), Arc<T>>,
}

impl<T> Default for Versions<T> {
    fn default() -> Self {
        Versions {
            map: BTreeMap::new(),
        }
    }
}

impl<T: Versioned> Versions<T> {
    /// Adds a version. The same version again with the same content is a
    /// no-op; with other content it is refused (with the words to say why).
    pub fn insert(&mut self, item: T) -> Result<(), String> {
        let key = (item.id().to_string(), item.version());
        if let Some(old) = self.map.get(&key) {
            if old.hash() != item.hash() {
                return Err(format!(
                    "{} version {} is already loaded with different content; give the changed file a new version",
                    item.id(),
                    item.version()
                ));
            }
            return Ok(());
        }
        self.map.insert(key, Arc::new(item));
        Ok(())
    }

    pub fn get(&self, id: &str, version: u32) -> Option<&Arc<T>> {
        self.map.get(&(id.to_string(), version))
    }

    /// The highest version of `id`.
    pub fn current(&self, id: &str) -> Option<&Arc<T>> {
        self.versions_of(id).pop()
    }

    /// Every version of `id`, oldest first.
    pub fn versions_of(&self, id: &str) -> Vec<&Arc<T>> {
        self.map
            .range((id.to_string(), 0)..=(id.to_string(), u32::MAX))
            .map(|(_, v)| v)
            .collect()
    }

    /// The current version of every id, in id order.
    pub fn all_current(&self) -> Vec<&Arc<T>> {
        let mut out: Vec<&Arc<T>> = Vec::new();
        for ((id, _), v) in &self.map {
            match out.last_mut() {
                Some(last) if last.id() == id => *last = v,
                _ => out.push(v),
            }
        }
        out
    }
}
