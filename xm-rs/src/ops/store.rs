//! The little of xenstore the everyday commands need, behind a trait: the real daemon through
//! the `xenstore` crate's client, or an in-memory store for host tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use xenstore::{Client, Errno, XsOps};

/// A xenstore failure, worded for the operator.
#[derive(Debug, thiserror::Error)]
#[error("xenstore: {0}")]
pub struct StoreError(pub String);

/// What `xm` reads and writes in xenstore.
pub trait Store {
    /// The value at `path`, or `None` if there is no such node.
    fn read(&self, path: &str) -> Result<Option<String>, StoreError>;
    /// Writes `value` at `path`, creating it (and its parents) if needed.
    fn write(&self, path: &str, value: &str) -> Result<(), StoreError>;
    /// Removes `path` and everything below it; a missing node is not an error.
    fn remove(&self, path: &str) -> Result<(), StoreError>;
    /// The children of `path` (names, not paths); none if there is no such node.
    fn list(&self, path: &str) -> Result<Vec<String>, StoreError>;
    /// Blocks until a domain is released or dies (`@releaseDomain` fires) or `timeout` passes,
    /// whichever comes first. Callers re-check the hypervisor after it returns, so an early
    /// return is harmless.
    fn wait_domain_change(&self, timeout: Duration) -> Result<(), StoreError>;
}

/// The real xenstore, over the `xenstore` crate's client.
#[derive(Debug)]
pub struct XsStore {
    client: Client,
    watching: Mutex<bool>,
}

/// The watch token `xm` uses for `@releaseDomain`.
const RELEASE_TOKEN: &str = "xm-rs-release";

impl XsStore {
    /// Connects to xenstored (its socket, else the xenbus device).
    pub fn open() -> Result<XsStore, StoreError> {
        let client = Client::open().map_err(|e| StoreError(e.to_string()))?;
        Ok(XsStore {
            client,
            watching: Mutex::new(false),
        })
    }
}

fn is_missing(e: &xenstore::client::Error) -> bool {
    e.errno() == Some(Errno::Enoent)
}

impl Store for XsStore {
    fn read(&self, path: &str) -> Result<Option<String>, StoreError> {
        match self.client.read(path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(StoreError(e.to_string())),
        }
    }

    fn write(&self, path: &str, value: &str) -> Result<(), StoreError> {
        self.client
            .write(path, value.as_bytes())
            .map_err(|e| StoreError(e.to_string()))
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        match self.client.rm(path) {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(StoreError(e.to_string())),
        }
    }

    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        match self.client.directory(path) {
            Ok(children) => Ok(children),
            Err(e) if is_missing(&e) => Ok(Vec::new()),
            Err(e) => Err(StoreError(e.to_string())),
        }
    }

    fn wait_domain_change(&self, timeout: Duration) -> Result<(), StoreError> {
        {
            let mut watching = self
                .watching
                .lock()
                .map_err(|_| StoreError("watch state poisoned".into()))?;
            if !*watching {
                // The registration fires once at once; the caller's re-check absorbs it.
                self.client
                    .watch("@releaseDomain", RELEASE_TOKEN)
                    .map_err(|e| StoreError(e.to_string()))?;
                *watching = true;
            }
        }
        self.client
            .next_event(Some(timeout))
            .map(drop)
            .map_err(|e| StoreError(e.to_string()))
    }
}

/// A hook [`MemStore`] runs on every [`Store::wait_domain_change`]: tests use it to make a
/// simulated guest react (shut down, die) while a command waits.
pub type WaitHook = Box<dyn FnMut(u32) + Send>;

/// An in-memory xenstore for host tests: a flat map of paths to values, parents implied.
#[derive(Default)]
pub struct MemStore {
    nodes: Mutex<BTreeMap<String, String>>,
    waits: Mutex<u32>,
    on_wait: Mutex<Option<WaitHook>>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("nodes", &self.nodes)
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Runs `hook` (with the number of waits so far, from 1) on every wait.
    pub fn on_wait(&self, hook: WaitHook) {
        if let Ok(mut slot) = self.on_wait.lock() {
            *slot = Some(hook);
        }
    }

    /// How many times a command waited for a domain change.
    pub fn waits(&self) -> u32 {
        self.waits.lock().map_or(0, |w| *w)
    }

    /// Every path with its value, for assertions.
    pub fn dump(&self) -> BTreeMap<String, String> {
        self.nodes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn nodes(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, String>>, StoreError> {
        self.nodes
            .lock()
            .map_err(|_| StoreError("in-memory store poisoned".into()))
    }
}

fn is_below(path: &str, dir: &str) -> bool {
    path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

impl Store for MemStore {
    fn read(&self, path: &str) -> Result<Option<String>, StoreError> {
        let nodes = self.nodes()?;
        if let Some(v) = nodes.get(path) {
            return Ok(Some(v.clone()));
        }
        // A parent of an existing node exists, with an empty value.
        Ok(nodes.keys().any(|k| is_below(k, path)).then(String::new))
    }

    fn write(&self, path: &str, value: &str) -> Result<(), StoreError> {
        self.nodes()?.insert(path.to_string(), value.to_string());
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        self.nodes()?.retain(|k, _| !is_below(k, path));
        Ok(())
    }

    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let children: std::collections::BTreeSet<String> = self
            .nodes()?
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        Ok(children.into_iter().collect())
    }

    fn wait_domain_change(&self, _timeout: Duration) -> Result<(), StoreError> {
        let count = {
            let mut waits = self
                .waits
                .lock()
                .map_err(|_| StoreError("in-memory store poisoned".into()))?;
            *waits += 1;
            *waits
        };
        if let Ok(mut hook) = self.on_wait.lock() {
            if let Some(hook) = hook.as_mut() {
                hook(count);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_store_lists_children_once_and_removes_subtrees() {
        let s = MemStore::new();
        s.write("/local/domain/1/name", "a").unwrap();
        s.write("/local/domain/1/control/shutdown", "").unwrap();
        s.write("/local/domain/12/name", "b").unwrap();
        s.write("/local/domain/1-x", "").unwrap();
        s.write("/local/domain/1", "").unwrap();
        assert_eq!(s.list("/local/domain").unwrap(), vec!["1", "1-x", "12"]);
        s.remove("/local/domain/1-x").unwrap();
        assert_eq!(s.read("/local/domain/1").unwrap(), Some(String::new()));
        s.remove("/local/domain/1").unwrap();
        assert_eq!(s.read("/local/domain/1/name").unwrap(), None);
        assert_eq!(s.read("/local/domain/12/name").unwrap(), Some("b".into()));
    }
}
