//! The requests a run has made at once (built, signed, waiting for a slot of the HTTP client
//! or in flight), across every account and region: twice what the client lets fly
//! (`MADE_PER_SLOT`), so that each is made just before a slot frees rather than all of them as
//! soon as they can be asked for. An account × region asks a dozen reads at once; across an
//! organization, 128 at work would otherwise hold 1,500 requests made (about 20 KB each: the
//! SDK's request, its configuration and its future), made all together, each waiting on the
//! CPU for the others while the pipe runs low. Paged reads (`pages`) and paced requests
//! (`pace::Streams::send`), the hot ones, take their slot here; the few other requests (a
//! probe of what an endpoint offers, a wait's poll) go straight to the client's budget.
//!
//! When every slot is taken, a request that opens work (a region's first page of images,
//! whose answer brings a dozen reads) is made before those that go on with work already open:
//! a context taking the place of one done starts at once rather than behind every read
//! queued, and the queue never runs dry while it starts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Which requests a slot goes to first when the budget is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Opens work: goes before every request that goes on.
    Opens,
    /// Goes on with work open; first come, first served.
    GoesOn,
}

/// Requests made at once: at most so many, the others waiting for a slot in the order of
/// their [`Turn`], then of their arrival.
#[derive(Debug)]
pub struct Budget {
    waiting: Mutex<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    free: usize,
    opening: VecDeque<oneshot::Sender<Slot>>,
    going_on: VecDeque<oneshot::Sender<Slot>>,
}

/// Where a request takes its slot, and its turn there.
#[derive(Debug, Clone)]
pub struct Gate {
    budget: Arc<Budget>,
    turn: Turn,
}

impl Gate {
    /// A slot, held while the request is made and answered.
    pub async fn slot(&self) -> Slot {
        Arc::clone(&self.budget).slot(self.turn).await
    }
}

/// A request's place in the budget, given back when dropped (`None`: passed on instead).
#[derive(Debug)]
pub struct Slot(Option<Arc<Budget>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(budget) = self.0.take() {
            budget.give_back();
        }
    }
}

impl Budget {
    pub fn new(size: usize) -> Arc<Budget> {
        Arc::new(Budget {
            waiting: Mutex::new(Waiting {
                free: size.max(1),
                opening: VecDeque::new(),
                going_on: VecDeque::new(),
            }),
        })
    }

    /// Where requests of this turn take their slots.
    pub fn gate(self: &Arc<Self>, turn: Turn) -> Gate {
        Gate {
            budget: Arc::clone(self),
            turn,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot: at once if one is free, else when one is given back and it is this request's
    /// turn.
    pub async fn slot(self: Arc<Self>, turn: Turn) -> Slot {
        let handed = {
            let mut waiting = self.lock();
            if waiting.free > 0 {
                waiting.free -= 1;
                drop(waiting);
                return Slot(Some(self));
            }
            let (hand, handed) = oneshot::channel();
            match turn {
                Turn::Opens => waiting.opening.push_back(hand),
                Turn::GoesOn => waiting.going_on.push_back(hand),
            }
            handed
        };
        // A slot is handed to a waiter that is still there, or given to the next one: the
        // sender is never dropped while this receiver lives.
        handed
            .await
            .unwrap_or_else(|_| unreachable!("a waiting request's slot is handed to it"))
    }

    /// A slot given back: to the next waiting request that is still there, else free.
    fn give_back(self: &Arc<Self>) {
        loop {
            let next = {
                let mut waiting = self.lock();
                let next = waiting.opening.pop_front().or_else(|| waiting.going_on.pop_front());
                if next.is_none() {
                    waiting.free += 1;
                }
                next
            };
            let Some(hand) = next else { return };
            // Outside the lock: a slot that can't be handed (its request was dropped since)
            // goes to the next waiter instead.
            match hand.send(Slot(Some(Arc::clone(self)))) {
                Ok(()) => return,
                Err(mut unhanded) => drop(unhanded.0.take()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Budget, Turn};

    #[tokio::test]
    async fn a_full_budget_lets_opening_requests_through_first_then_in_order() {
        let budget = Budget::new(1);
        let held = Arc::clone(&budget).slot(Turn::GoesOn).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, turn) in [("a", Turn::GoesOn), ("b", Turn::GoesOn), ("open", Turn::Opens)] {
            let (budget, order) = (Arc::clone(&budget), Arc::clone(&order));
            waiting.push(tokio::spawn(async move {
                let slot = budget.slot(turn).await;
                order.lock().unwrap().push(name);
                drop(slot);
            }));
            // Each waits before the next comes.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }
        assert!(order.lock().unwrap().is_empty(), "none while the one slot is held");
        drop(held);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["open", "a", "b"]);
        assert_eq!(budget.lock().free, 1, "the slot is free again");
    }

    #[tokio::test]
    async fn a_slot_whose_waiter_went_away_goes_to_the_next() {
        let budget = Budget::new(1);
        let held = Arc::clone(&budget).slot(Turn::GoesOn).await;
        let gone = tokio::spawn(Arc::clone(&budget).slot(Turn::Opens));
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        let next = tokio::spawn(Arc::clone(&budget).slot(Turn::GoesOn));
        tokio::task::yield_now().await;
        drop(held);
        let slot = next.await.unwrap();
        assert_eq!(budget.lock().free, 0);
        drop(slot);
        assert_eq!(budget.lock().free, 1, "no slot lost, none made");
    }
}
