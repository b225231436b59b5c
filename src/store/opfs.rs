//! The journal directory in the Origin Private File System (wasm32): [`OpfsDir`], one directory
//! `mnemo-journal/<hex of the database name>/` per store, holding the journal's whole files
//! (see [`super::journal`]).
//!
//! Works on a page and in a dedicated worker alike. Pending entries (`p-<n>`) are written by a
//! small dedicated worker with `createSyncAccessHandle()` where it can run
//! ([`super::opfs_worker`]: in place, from the worker's thread, about twice as fast); everything
//! else, and pending entries where the worker cannot run, is written with `createWritable()`
//! (which writes a swap file and moves it into place on `close()`, so a file is replaced
//! atomically and a failed write leaves nothing behind). Every file is written once, whole;
//! nothing is appended (`keepExistingData` would copy the file first). Renames use
//! `FileSystemHandle.move(name)`, on the handle the write just used when it is the file last
//! written (one round trip to the browser fewer). The write
//! and the `close()` are issued together (the stream queues the close behind the write), so a
//! file costs three round trips: `getFileHandle`, `createWritable`, then write + close.
//!
//! Nothing here runs inside an IndexedDB transaction: the store calls these between its
//! transactions.

use std::cell::RefCell;

use futures_channel::oneshot;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, DomException, FileSystemDirectoryHandle, FileSystemFileHandle,
    FileSystemGetDirectoryOptions, FileSystemGetFileOptions, FileSystemRemoveOptions,
    FileSystemWritableFileStream, StorageManager,
};

use super::backend::{is_stale_pending, JournalDir};
use super::error::{Result, StoreError};
use super::journal::{is_pending, pending_name};
use super::opfs_worker::{Courier, Op};

/// The OPFS directory holding every store's journal directory.
const ROOT: &str = "mnemo-journal";

fn opfs_err(ctx: &str, e: &JsValue) -> StoreError {
    if let Some(d) = e.dyn_ref::<DomException>() {
        let (name, msg) = (d.name(), d.message());
        return match name.as_str() {
            "QuotaExceededError" => {
                StoreError::QuotaExceeded(format!("journal {ctx}: {name} {msg}"))
            }
            _ => StoreError::Backend(format!("journal {ctx}: {name}: {msg}")),
        };
    }
    StoreError::Backend(format!("journal {ctx}: {e:?}"))
}

fn is_not_found(e: &JsValue) -> bool {
    e.dyn_ref::<DomException>()
        .is_some_and(|d| d.name() == "NotFoundError")
}

fn is_locked(e: &JsValue) -> bool {
    e.dyn_ref::<DomException>()
        .is_some_and(|d| d.name() == "NoModificationAllowedError")
}

/// How often, and how far apart, [`OpfsDir::delete`] tries again while a file is locked.
const DELETE_RETRIES: u32 = 50;
const DELETE_RETRY_MS: i32 = 100;

/// Resolve after `ms` milliseconds (`setTimeout` of the current global).
pub(crate) async fn sleep_ms(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        if let Some(f) = Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
        {
            let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from(ms));
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wait(p).await;
}

async fn wait(p: Promise) -> std::result::Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

/// `navigator.storage` of the current global (window or worker).
fn storage() -> Result<StorageManager> {
    let nav = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
        .map_err(|e| opfs_err("navigator", &e))?;
    let st = Reflect::get(&nav, &JsValue::from_str("storage")).unwrap_or(JsValue::UNDEFINED);
    st.dyn_into::<StorageManager>()
        .map_err(|_| StoreError::Backend("navigator.storage is not available".into()))
}

/// The OPFS root directory.
async fn root() -> Result<FileSystemDirectoryHandle> {
    let sm = storage()?;
    if !Reflect::has(&sm, &JsValue::from_str("getDirectory")).unwrap_or(false) {
        return Err(StoreError::Backend(
            "the Origin Private File System is not available".into(),
        ));
    }
    let v = wait(sm.get_directory())
        .await
        .map_err(|e| opfs_err("getDirectory", &e))?;
    v.dyn_into()
        .map_err(|_| StoreError::Backend("getDirectory gave no directory".into()))
}

/// A directory name for the database `dbname` (hex: any database name is a valid file name).
fn dir_name(dbname: &str) -> String {
    dbname.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn subdir(
    parent: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
) -> std::result::Result<FileSystemDirectoryHandle, JsValue> {
    let o = FileSystemGetDirectoryOptions::new();
    o.set_create(create);
    let v = wait(parent.get_directory_handle_with_options(name, &o)).await?;
    Ok(v.unchecked_into())
}

/// A random 64-bit number (for pending file names).
fn random_u64() -> u64 {
    let r = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    r ^ (js_sys::Date::now() as u64).rotate_left(40)
}

/// The journal directory of one store in the Origin Private File System.
#[derive(Clone)]
pub struct OpfsDir {
    dir: FileSystemDirectoryHandle,
    /// The file last written, and its handle (a rename of it reuses the handle; `None`: the
    /// worker wrote it and holds the handle).
    last: Rc<RefCell<Option<Written>>>,
    /// The next pending file, opened ahead (see [`Spare`]).
    spare: Rc<RefCell<Spare>>,
    /// The worker writing pending entries (settled at the first pending write, so a store that
    /// only reads never starts it).
    worker: Rc<RefCell<Mode>>,
    /// This directory's key in the worker (`"<n>|<path>"`).
    key: Rc<str>,
}

/// Whether pending entries go through the worker.
#[derive(Clone, Default)]
enum Mode {
    #[default]
    Unknown,
    Worker(Rc<Courier>),
    Writable,
}

/// The file last written: its name, and its handle unless the worker wrote it.
type Written = (String, Option<FileSystemFileHandle>);

/// A spare pending file, open: on this thread (handle and writable) or in the worker.
enum SpareFile {
    Writable(FileSystemFileHandle, FileSystemWritableFileStream),
    Worker,
}

/// A pending file opened ahead of the next write: after each write, the next `p-<n>` file is
/// created and its writable opened in the background, so the next entry goes straight to write +
/// close (two of the three round trips are off the write's path). [`JournalDir::unique`] hands out
/// its number; a write to another name, or one whose spare failed to open, opens its file as
/// usual. The open writable holds the file's lock, so a compaction's clean-up of stray pending
/// files (left by closed or killed tabs) cannot remove it; [`OpfsDir::release`] (on close) aborts
/// it and removes the file.
#[derive(Default)]
struct Spare {
    /// Its number, and the task opening it (`None` if it failed to open).
    next: Option<(u64, SpareRx)>,
    /// The spare whose number [`JournalDir::unique`] handed out (no other call gets it), until
    /// the write to it takes it.
    claimed: Option<(u64, SpareRx)>,
    /// Released: no more spares (the connection closed).
    released: bool,
}

/// A spare file's handle and open writable, once its opening task is done.
type SpareRx = oneshot::Receiver<Option<SpareFile>>;

thread_local! {
    /// Directories opened on this thread so far (their keys in the worker).
    static OPENED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl OpfsDir {
    /// Open (creating) the journal directory of the database `dbname`. Fails where OPFS is not
    /// available (the store then runs without a journal).
    pub async fn open(dbname: &str) -> Result<OpfsDir> {
        let root = root().await?;
        let parent = subdir(&root, ROOT, true)
            .await
            .map_err(|e| opfs_err("open", &e))?;
        let hex = dir_name(dbname);
        let dir = subdir(&parent, &hex, true)
            .await
            .map_err(|e| opfs_err("open", &e))?;
        let n = OPENED.with(|o| {
            o.set(o.get().wrapping_add(1));
            o.get()
        });
        Ok(OpfsDir {
            dir,
            last: Rc::default(),
            spare: Rc::default(),
            worker: Rc::default(),
            key: Rc::from(format!("{n}|{ROOT}/{hex}")),
        })
    }

    /// Pending entries are written by the worker (`createSyncAccessHandle`), not on this thread
    /// (settles the choice if no write did yet).
    pub async fn uses_worker(&self) -> bool {
        self.settle().await.is_some()
    }

    /// The worker and this directory's key in it, once chosen and while the worker lives.
    fn courier(&self) -> Option<(Rc<Courier>, Rc<str>)> {
        match &*self.worker.borrow() {
            Mode::Worker(c) if !c.dead() => Some((c.clone(), self.key.clone())),
            _ => None,
        }
    }

    /// [`Self::courier`], choosing first if not chosen yet (starting the worker, or finding it
    /// cannot run here).
    async fn settle(&self) -> Option<(Rc<Courier>, Rc<str>)> {
        if matches!(&*self.worker.borrow(), Mode::Unknown) {
            let m = match Courier::get().await {
                Some(c) => Mode::Worker(c),
                None => Mode::Writable,
            };
            *self.worker.borrow_mut() = m;
        }
        self.courier()
    }

    /// Delete the journal directory of the database `dbname` with everything in it (no error if
    /// there is none, or no OPFS at all).
    pub async fn delete(dbname: &str) -> Result<()> {
        let Ok(root) = root().await else {
            return Ok(());
        };
        let parent = match subdir(&root, ROOT, false).await {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(opfs_err("delete", &e)),
        };
        let o = FileSystemRemoveOptions::new();
        o.set_recursive(true);
        // A file still being written (a compaction of a connection closed a moment ago finishing
        // its snapshot) holds a lock and fails the removal with `NoModificationAllowedError`
        // until its write settles: try again for a while.
        let mut tries = 0;
        loop {
            match wait(parent.remove_entry_with_options(&dir_name(dbname), &o)).await {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if tries < DELETE_RETRIES && is_locked(&e) => {
                    tries += 1;
                    sleep_ms(DELETE_RETRY_MS).await;
                }
                Err(e) => return Err(opfs_err("delete", &e)),
            }
        }
    }

    async fn file(
        &self,
        name: &str,
        create: bool,
    ) -> std::result::Result<FileSystemFileHandle, JsValue> {
        let o = FileSystemGetFileOptions::new();
        o.set_create(create);
        let v = wait(self.dir.get_file_handle_with_options(name, &o)).await?;
        Ok(v.unchecked_into())
    }

    /// Open the next spare pending file in the background (unless released or already there).
    fn prepare_spare(&self) {
        let mut sp = self.spare.borrow_mut();
        if sp.released || sp.next.is_some() {
            return;
        }
        let n = random_u64();
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let name = pending_name(n);
            let open = async {
                if let Some((c, key)) = me.settle().await {
                    if me.spare.borrow().released {
                        // Released while the worker started: the directory may be gone.
                        return Err(JsValue::NULL);
                    }
                    c.call(Op::Open, &key, &name, "", None).await?;
                    if me.spare.borrow().released {
                        // Released while it opened: the worker's forget may have run first.
                        c.send(Op::Forget, &key);
                    }
                    return Ok(SpareFile::Worker);
                }
                let fh = me.file(&name, true).await?;
                let w = wait(fh.create_writable()).await?.unchecked_into();
                Ok::<_, JsValue>(SpareFile::Writable(fh, w))
            };
            let _ = tx.send(open.await.ok());
        });
        sp.next = Some((n, rx));
    }

    /// The spare for `name`, if there is one ready.
    async fn take_spare(&self, name: &str) -> Option<SpareFile> {
        let (_, rx) = {
            let mut sp = self.spare.borrow_mut();
            match &sp.claimed {
                Some((n, _)) if pending_name(*n) == name => sp.claimed.take()?,
                _ => return None,
            }
        };
        rx.await.ok().flatten()
    }

    /// No more spares; abort the one opened ahead and remove its file (in the background: the
    /// connection is closing).
    pub fn release(&self) {
        let spares = {
            let mut sp = self.spare.borrow_mut();
            sp.released = true;
            [sp.next.take(), sp.claimed.take()]
        };
        if let Some((c, key)) = self.courier() {
            // The worker closes and removes this directory's spares itself.
            c.send(Op::Forget, &key);
            return;
        }
        for (n, rx) in spares.into_iter().flatten() {
            let dir = self.dir.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(Some(SpareFile::Writable(_, w))) = rx.await {
                    let _ = wait(w.abort()).await;
                    let _ = wait(dir.remove_entry(&pending_name(n))).await;
                }
            });
        }
    }

    /// A whole file, `flush`ed to the device when written by the worker (or not: relaxed stores);
    /// on failure nothing of it is left.
    async fn write_with_flush(&self, name: &str, bytes: &[u8], flush: bool) -> Result<()> {
        if let Err(e) = self.write_inner(name, bytes, flush).await {
            // Nothing half-written: the swap file was discarded; drop the (empty) new entry.
            let _ = wait(self.dir.remove_entry(name)).await;
            return Err(opfs_err("write", &e));
        }
        Ok(())
    }

    async fn write_inner(
        &self,
        name: &str,
        bytes: &[u8],
        flush: bool,
    ) -> std::result::Result<(), JsValue> {
        let spare = self.take_spare(name).await;
        let r = self.write_file(name, bytes, spare, flush).await;
        self.prepare_spare();
        r
    }

    async fn write_file(
        &self,
        name: &str,
        bytes: &[u8],
        spare: Option<SpareFile>,
        flush: bool,
    ) -> std::result::Result<(), JsValue> {
        let worker = match is_pending(name) {
            true => self.settle().await,
            false => None,
        };
        if let Some((c, key)) = worker {
            if !matches!(spare, Some(SpareFile::Writable(..))) {
                // A JS copy of the bytes, transferred to the worker.
                let data = Uint8Array::from(bytes);
                let op = if flush { Op::Write } else { Op::WriteLazy };
                c.call(op, &key, name, "", Some(&data)).await?;
                *self.last.borrow_mut() = Some((name.to_string(), None));
                return Ok(());
            }
        }
        let (fh, w) = match spare {
            Some(SpareFile::Writable(fh, w)) => (fh, w),
            _ => {
                let fh = self.file(name, true).await?;
                let w = wait(fh.create_writable()).await?.unchecked_into();
                (fh, w)
            }
        };
        // A JS copy of the bytes: the write may read them after wasm memory moved on.
        let data = Uint8Array::from(bytes);
        // The close is queued behind the write (`write()` releases the stream's writer before it
        // returns): both go to the browser at once. When the write fails the stream errors, the
        // close rejects and the swap file is discarded.
        let write = w.write_with_js_u8_array(&data);
        let written = match write {
            Ok(p) => {
                let close = w.close();
                let a = wait(p).await.map(|_| ());
                let b = wait(close).await.map(|_| ());
                a.and(b)
            }
            Err(e) => {
                let _ = wait(w.abort()).await;
                Err(e)
            }
        };
        written?;
        *self.last.borrow_mut() = Some((name.to_string(), Some(fh)));
        Ok(())
    }
}

impl JournalDir for OpfsDir {
    async fn list(&self) -> Result<Vec<String>> {
        let it = self.dir.keys();
        let mut out = Vec::new();
        loop {
            let r = wait(it.next().map_err(|e| opfs_err("list", &e))?)
                .await
                .map_err(|e| opfs_err("list", &e))?;
            let done = Reflect::get(&r, &JsValue::from_str("done"))
                .ok()
                .and_then(|d| d.as_bool())
                .unwrap_or(true);
            if done {
                break;
            }
            if let Some(n) = Reflect::get(&r, &JsValue::from_str("value"))
                .ok()
                .and_then(|v| v.as_string())
            {
                out.push(n);
            }
        }
        Ok(out)
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let fh = match self.file(name, false).await {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(opfs_err("read", &e)),
        };
        let file: Blob = wait(fh.get_file())
            .await
            .map_err(|e| opfs_err("read", &e))?
            .unchecked_into();
        let buf: ArrayBuffer = wait(file.array_buffer())
            .await
            .map_err(|e| opfs_err("read", &e))?
            .unchecked_into();
        Ok(Some(Uint8Array::new(&buf).to_vec()))
    }

    async fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_with_flush(name, bytes, true).await
    }

    /// A pending entry through the worker is written without `flush()` (the `createWritable`
    /// path has no flush to skip).
    async fn write_relaxed(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_with_flush(name, bytes, false).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let last = self.last.borrow_mut().take();
        if let (Some((n, None)), Some((c, key))) = (&last, self.courier()) {
            if n == from {
                // Written by the worker, which holds its handle.
                c.call(Op::Move, &key, from, to, None)
                    .await
                    .map_err(|e| opfs_err("rename", &e))?;
                return Ok(());
            }
        }
        let fh = match last {
            Some((n, Some(fh))) if n == from => fh,
            _ => self
                .file(from, false)
                .await
                .map_err(|e| opfs_err("rename", &e))?,
        };
        let mv: Function = Reflect::get(&fh, &JsValue::from_str("move"))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| {
                StoreError::Backend("journal rename: no FileSystemHandle.move".into())
            })?;
        let p: Promise = mv
            .call1(&fh, &JsValue::from_str(to))
            .map_err(|e| opfs_err("rename", &e))?
            .dyn_into()
            .map_err(|_| StoreError::Backend("journal rename: move gave no promise".into()))?;
        wait(p).await.map_err(|e| opfs_err("rename", &e))?;
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        match wait(self.dir.remove_entry(name)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(opfs_err("remove", &e)),
        }
    }

    async fn remove_stray(&self, name: &str) -> Result<()> {
        let fh = match self.file(name, false).await {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(opfs_err("stray", &e)),
        };
        // A file that cannot be read now (locked by its writer) fails here: the clean-up ignores
        // the error and keeps it, as it should a live file.
        let file: web_sys::File = wait(fh.get_file())
            .await
            .map_err(|e| opfs_err("stray", &e))?
            .unchecked_into();
        if !is_stale_pending(file.last_modified(), js_sys::Date::now()) {
            return Ok(());
        }
        self.remove(name).await
    }

    fn unique(&self) -> u64 {
        let mut sp = self.spare.borrow_mut();
        match sp.next.take() {
            Some(next) => {
                let n = next.0;
                // An earlier claimed spare nobody wrote to stays open until the release.
                if let Some(old) = sp.claimed.replace(next) {
                    sp.next = Some(old);
                }
                n
            }
            None => random_u64(),
        }
    }
}
