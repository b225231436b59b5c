//! A tiny single-threaded async lock. The store's writes from one connection run one at a time
//! under it (taken before a transaction opens, released after it completed), and so do the
//! engine's operations on its in-memory indexes (a write holds it from the store commit until the
//! indexes reflect it): concurrent calls from JS queue instead of conflicting or observing
//! half-applied state.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// The lock.
#[derive(Default)]
pub(crate) struct AsyncLock {
    locked: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

/// Held while alive.
pub(crate) struct Guard<'a>(&'a AsyncLock);

impl AsyncLock {
    /// Wait for the lock.
    pub(crate) async fn lock(&self) -> Guard<'_> {
        poll_fn(|cx| {
            if self.locked.get() {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                self.locked.set(true);
                Poll::Ready(())
            }
        })
        .await;
        Guard(self)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.locked.set(false);
        // Wake everyone: a waiter whose future was dropped must not strand the others.
        let waiters = std::mem::take(&mut *self.0.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}
