//! A frontend's connection slots (maxconn): a count and a limit that an
//! apply can change in place, shared by every accept loop of the listener.
//! Raising the limit wakes waiting accept loops at once; lowering it admits
//! no connection until the count is below the new limit.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Connection slots of one listener.
#[derive(Debug)]
pub struct Slots {
    used: AtomicUsize,
    limit: AtomicUsize,
    /// Woken when a slot frees up while full, or the limit changes.
    freed: Notify,
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    /// Slots for `limit` connections.
    pub fn new(limit: u32) -> Arc<Slots> {
        Arc::new(Slots {
            used: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit as usize),
            freed: Notify::new(),
        })
    }

    /// Sets the limit; waiting accept loops look again at once.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit as usize, Ordering::SeqCst);
        self.freed.notify_waiters();
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::SeqCst)
    }

    /// Slots in use now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// A slot if one is free now.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            if used >= self.limit() {
                return None;
            }
            match (self.used).compare_exchange_weak(
                used,
                used + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => used = now,
            }
        }
    }

    /// Waits for a free slot.
    pub async fn take(self: &Arc<Self>) -> Slot {
        loop {
            // Registered before looking, so a slot freed in between wakes us.
            let mut freed = pin!(self.freed.notified());
            freed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }

    /// Waits until a slot is free, without taking it: an accept loop of
    /// several on one listener waits here, so none holds a slot while its
    /// socket has nothing to accept.
    pub async fn wait_free(&self) {
        loop {
            let mut freed = pin!(self.freed.notified());
            freed.as_mut().enable();
            if self.used() < self.limit() {
                return;
            }
            freed.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let before = self.0.used.fetch_sub(1, Ordering::SeqCst);
        // Accept loops wait only while the slots are full.
        if before >= self.0.limit() {
            self.0.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn never_more_than_the_limit() {
        let slots = Slots::new(2);
        let a = slots.try_take().unwrap();
        let _b = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        slots.set_limit(1);
        drop(a);
        assert_eq!(slots.used(), 1);
        assert!(slots.try_take().is_none(), "lowered limit exceeded");
        slots.set_limit(3);
        let _c = slots.try_take().unwrap();
        let _d = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        assert_eq!(slots.used(), 3);
    }

    #[tokio::test]
    async fn raising_the_limit_wakes_a_waiter() {
        let slots = Slots::new(1);
        let _held = slots.try_take().unwrap();
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "took a slot beyond the limit");
        slots.set_limit(2);
        let slot = tokio::time::timeout(Duration::from_secs(2), waiter).await;
        assert!(slot.is_ok(), "raised limit did not wake the waiter");
        assert_eq!(slots.used(), 2);
    }

    #[tokio::test]
    async fn a_freed_slot_wakes_a_waiter() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap();
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let slot = tokio::time::timeout(Duration::from_secs(2), waiter).await;
        assert!(slot.is_ok(), "freed slot did not wake the waiter");
    }

    #[tokio::test]
    async fn wait_free_takes_nothing() {
        let slots = Slots::new(1);
        slots.wait_free().await;
        assert_eq!(slots.used(), 0);
        let held = slots.try_take().unwrap();
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.wait_free().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "free while full");
        drop(held);
        let woke = tokio::time::timeout(Duration::from_secs(2), waiter).await;
        assert!(woke.is_ok(), "a freed slot did not wake it");
        assert_eq!(slots.used(), 0);
    }
}
