//! Who gets a connection to the admin API when many try: callers that have
//! not shown credentials yet (a TLS handshake in progress, a probe, an
//! attacker holding sockets open) share a small budget, capped per source
//! address; callers with credentials (a verified client certificate, or a
//! request that passed [`super::Auth`]) have the rest. When a budget is
//! full, the oldest unauthenticated connection of the address holding the
//! most goes, so idle connections cannot keep the operator out: they are
//! closed to make room, never the newcomer refused.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use tokio::task::AbortHandle;

/// Connections at once, with and without credentials.
pub(super) const MAX_CONNECTIONS: usize = 256;
/// Connections without credentials yet, at once.
pub(super) const MAX_UNAUTHENTICATED: usize = 64;
/// Connections without credentials yet, at once, from one address.
pub(super) const MAX_UNAUTHENTICATED_PER_IP: usize = 8;

/// A connection's place in the gate.
pub(super) type Ticket = u64;

/// The admission decision for a new connection.
#[derive(Debug)]
pub(super) enum Admission {
    /// Admitted as unauthenticated; `evicted` (if any) was removed to make room.
    Admit {
        ticket: Ticket,
        evicted: Option<Evicted>,
    },
    /// Every slot holds an authenticated connection.
    Refuse,
}

/// A connection closed to make room.
#[derive(Debug)]
pub(super) struct Evicted {
    pub ticket: Ticket,
    pub ip: IpAddr,
    /// Its task, when registered ([`Gate::set_task`]); aborting it closes the socket.
    pub task: Option<AbortHandle>,
}

#[derive(Debug)]
struct Pending {
    ip: IpAddr,
    task: Option<AbortHandle>,
}

/// The connections open now. Decisions only; the caller aborts the evicted
/// tasks. Tickets increase, so the lowest pending ticket is the oldest.
#[derive(Debug, Default)]
pub(super) struct Gate {
    next: Ticket,
    pending: BTreeMap<Ticket, Pending>,
    pending_per_ip: HashMap<IpAddr, usize>,
    authenticated: usize,
}

impl Gate {
    /// Admits a connection from `ip`, evicting an unauthenticated one when a
    /// budget is full.
    pub fn admit(&mut self, ip: IpAddr) -> Admission {
        let full_ip =
            self.pending_per_ip.get(&ip).copied().unwrap_or(0) >= MAX_UNAUTHENTICATED_PER_IP;
        let full_unauthenticated = self.pending.len() >= MAX_UNAUTHENTICATED;
        let full = self.pending.len() + self.authenticated >= MAX_CONNECTIONS;
        let victim = if full_ip {
            self.oldest_of(ip)
        } else if full_unauthenticated || full {
            self.heaviest_ip()
                .and_then(|heaviest| self.oldest_of(heaviest))
        } else {
            None
        };
        if full && victim.is_none() {
            return Admission::Refuse;
        }
        let evicted = victim.map(|ticket| {
            let pending = self.remove_pending(ticket).expect("the victim is pending");
            Evicted {
                ticket,
                ip: pending.ip,
                task: pending.task,
            }
        });
        let ticket = self.next;
        self.next += 1;
        self.pending.insert(ticket, Pending { ip, task: None });
        *self.pending_per_ip.entry(ip).or_default() += 1;
        Admission::Admit { ticket, evicted }
    }

    /// Records the task serving `ticket`, so that an eviction can end it.
    /// False when the ticket is no longer pending (the task may stop).
    pub fn set_task(&mut self, ticket: Ticket, task: AbortHandle) -> bool {
        match self.pending.get_mut(&ticket) {
            Some(pending) => {
                pending.task = Some(task);
                true
            }
            None => false,
        }
    }

    /// `ticket` showed credentials: it leaves the unauthenticated budget.
    /// Returns whether it was pending (a second call is a no-op).
    pub fn authenticate(&mut self, ticket: Ticket) -> bool {
        if self.remove_pending(ticket).is_some() {
            self.authenticated += 1;
            true
        } else {
            false
        }
    }

    /// `ticket`'s connection ended; `authenticated` as it last was.
    pub fn close(&mut self, ticket: Ticket, authenticated: bool) {
        if self.remove_pending(ticket).is_none() && authenticated {
            self.authenticated = self.authenticated.saturating_sub(1);
        }
    }

    /// (unauthenticated, authenticated) connections open.
    pub fn counts(&self) -> (usize, usize) {
        (self.pending.len(), self.authenticated)
    }

    fn oldest_of(&self, ip: IpAddr) -> Option<Ticket> {
        self.pending
            .iter()
            .find(|(_, p)| p.ip == ip)
            .map(|(ticket, _)| *ticket)
    }

    /// The address with the most unauthenticated connections; on a tie, the
    /// one whose oldest connection is oldest.
    fn heaviest_ip(&self) -> Option<IpAddr> {
        let most = self.pending_per_ip.values().copied().max()?;
        self.pending
            .values()
            .find(|p| self.pending_per_ip.get(&p.ip) == Some(&most))
            .map(|p| p.ip)
    }

    fn remove_pending(&mut self, ticket: Ticket) -> Option<Pending> {
        let pending = self.pending.remove(&ticket)?;
        if let Some(count) = self.pending_per_ip.get_mut(&pending.ip) {
            *count -= 1;
            if *count == 0 {
                self.pending_per_ip.remove(&pending.ip);
            }
        }
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn admit(gate: &mut Gate, from: IpAddr) -> (Ticket, Option<Ticket>) {
        match gate.admit(from) {
            Admission::Admit { ticket, evicted } => (ticket, evicted.map(|e| e.ticket)),
            Admission::Refuse => panic!("refused"),
        }
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_loses_its_oldest() {
        let mut gate = Gate::default();
        let first: Vec<Ticket> = (0..MAX_UNAUTHENTICATED_PER_IP)
            .map(|_| admit(&mut gate, ip(2)))
            .map(|(t, evicted)| {
                assert_eq!(evicted, None);
                t
            })
            .collect();
        // The next one from the same address closes that address's oldest.
        assert_eq!(admit(&mut gate, ip(2)).1, Some(first[0]));
        assert_eq!(admit(&mut gate, ip(2)).1, Some(first[1]));
        // Another address is not affected.
        assert_eq!(admit(&mut gate, ip(1)).1, None);
        assert_eq!(gate.counts(), (MAX_UNAUTHENTICATED_PER_IP + 1, 0));
    }

    #[test]
    fn a_full_unauthenticated_budget_evicts_from_the_heaviest_address() {
        let mut gate = Gate::default();
        // Many addresses, 7 each: the budget fills up.
        let mut tickets = Vec::new();
        for n in 0..(MAX_UNAUTHENTICATED / 7 + 1) as u8 {
            for _ in 0..7 {
                if gate.counts().0 < MAX_UNAUTHENTICATED {
                    tickets.push((admit(&mut gate, ip(10 + n)).0, ip(10 + n)));
                }
            }
        }
        assert_eq!(gate.counts().0, MAX_UNAUTHENTICATED);
        // The operator's connection gets in; the victim is the oldest of the
        // heaviest address (127.0.0.10, 7 open), not the operator.
        let (operator, evicted) = admit(&mut gate, ip(1));
        assert_eq!(evicted, Some(tickets[0].0));
        assert_eq!(gate.counts().0, MAX_UNAUTHENTICATED);
        // Credentials move it out of the budget; later evictions never touch it.
        assert!(gate.authenticate(operator));
        assert!(!gate.authenticate(operator));
        for _ in 0..1000 {
            let (_, evicted) = admit(&mut gate, ip(99));
            assert_ne!(evicted, Some(operator));
        }
        assert_eq!(gate.counts(), (MAX_UNAUTHENTICATED, 1));
    }

    #[test]
    fn authenticated_connections_are_never_evicted_only_newcomers_refused() {
        let mut gate = Gate::default();
        for _ in 0..MAX_CONNECTIONS {
            let (ticket, _) = admit(&mut gate, ip(1));
            assert!(gate.authenticate(ticket));
        }
        assert!(matches!(gate.admit(ip(2)), Admission::Refuse));
        // One closes: room for one more.
        gate.close(0, true);
        let (ticket, evicted) = admit(&mut gate, ip(2));
        assert_eq!(evicted, None);
        // Full again, with one unauthenticated: it is the one evicted.
        assert_eq!(admit(&mut gate, ip(3)).1, Some(ticket));
    }

    #[test]
    fn close_and_late_task_registration_keep_counts_right() {
        let mut gate = Gate::default();
        let (a, _) = admit(&mut gate, ip(1));
        let (b, _) = admit(&mut gate, ip(1));
        gate.authenticate(b);
        gate.close(a, false);
        gate.close(b, true);
        assert_eq!(gate.counts(), (0, 0));
        // Closing twice does not underflow or double count.
        gate.close(b, true);
        assert_eq!(gate.counts(), (0, 0));
        assert!(gate.pending_per_ip.is_empty());
    }
}
