//! What the front-ends' tests share: feeding bytes and collecting events.

use super::{BadInput, Event, Frontend};

/// Feeds `input` and drains every event, up to and including a `Close`.
pub(crate) fn events<F: Frontend>(fe: &mut F, input: &[u8]) -> Vec<Event<F::Login>> {
    fe.receive(input);
    let mut out = Vec::new();
    while let Some(ev) = fe.next_event() {
        let close = matches!(ev, Event::Close);
        out.push(ev);
        if close {
            break;
        }
    }
    out
}

/// The kinds of bad input among `events`, in order.
pub(crate) fn kinds<L>(events: &[Event<L>]) -> Vec<BadInput> {
    events
        .iter()
        .filter_map(|ev| match ev {
            Event::BadInput(kind) => Some(*kind),
            _ => None,
        })
        .collect()
}

/// `events` are a refusal of `kind` that reached `max_prelogin_errors`:
/// its reply, its kind, the protocol's `goodbye`, `TooManyErrors`, and the
/// close, in that order and nothing else.
pub(crate) fn assert_cut_off<L: std::fmt::Debug>(events: &[Event<L>], kind: BadInput, goodbye: &[u8]) {
    match events {
        [
            Event::Reply(_),
            Event::BadInput(k),
            Event::Reply(bye),
            Event::BadInput(BadInput::TooManyErrors),
            Event::Close,
        ] if *k == kind => assert_eq!(bye.as_slice(), goodbye),
        other => panic!("{other:?}"),
    }
}
