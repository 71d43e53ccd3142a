//! Paged reads (DescribeImages, the usage scans, …), a page after another.
//!
//! The SDK's paginators hand each page over a channel that sets aside room for 32 answers
//! (an output and its error, about 13 KB) per read. A cleanup plan across an organization
//! has 128 accounts × regions at once, each with a dozen paged scans: those channels were a
//! sixth of the run's memory, made and dropped thousands of times. These reads ask the next
//! page when the last one has been handled, with nothing set aside.

use std::future::Future;

use futures::Stream;

use super::Ec2;
use super::budget::{Gate, Turn};

/// Why a paged read ended before its last page.
#[derive(Debug, PartialEq, Eq)]
pub enum PageError<E> {
    /// The endpoint refused a page.
    Refused(E),
    /// A page came back with the token it was asked with. Read again it would repeat itself
    /// forever; the pages after it can't be read, so the read is incomplete. (The SDK's
    /// paginators end there quietly, as if it were the last page: a consumer on a later page
    /// would go unseen, and its image look unused.)
    Repeated(Repeated),
}

/// A page came back with this token, the one it was asked with.
#[derive(Debug, PartialEq, Eq)]
pub struct Repeated(pub String);

/// The token to ask for the page after one asked with `sent` that answered `next`: `None`
/// after the last page (no token, or an empty one); [`Repeated`] if `next` is `sent`.
pub fn after(sent: Option<&str>, next: Option<&str>) -> Result<Option<String>, Repeated> {
    match next.filter(|t| !t.is_empty()) {
        Some(repeated) if Some(repeated) == sent => Err(Repeated(repeated.to_owned())),
        more => Ok(more.map(str::to_owned)),
    }
}

/// Every page of a read: `ask` sends the request with the previous page's token (`None`
/// first), `token` reads the next one from a page. The pages end after one with no token or
/// an empty one; a page with the token just sent, or an error, is the read's last item.
///
/// Each page is asked once `gate` gives it a slot (see [`super::budget`]).
pub fn pages<P, E, F, Fut>(
    gate: Gate,
    ask: F,
    token: fn(&P) -> Option<&str>,
) -> impl Stream<Item = Result<P, PageError<E>>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<P, E>>,
{
    // `None`: no more pages; `Some(token)`: ask for the page after `token`.
    futures::stream::unfold(
        (ask, Some(None)),
        move |(mut ask, next): (F, Option<Option<String>>)| {
            let gate = gate.clone();
            async move {
                let sent = next?;
                let slot = gate.slot().await;
                // Made only now, and boxed: an SDK request's future is kilobytes, and is only
                // needed while it is in flight, not carried in every future that reads pages.
                let answer = Box::pin(ask(sent.clone())).await;
                drop(slot);
                let (item, more) = match answer {
                    Ok(page) => match after(sent.as_deref(), token(&page)) {
                        Ok(more) => (Ok(page), more.map(Some)),
                        Err(repeated) => (Err(PageError::Repeated(repeated)), None),
                    },
                    Err(err) => (Err(PageError::Refused(err)), None),
                };
                Some((item, (ask, more)))
            }
        },
    )
}

impl Ec2 {
    /// Every page of a read of this account and region that goes on with work already open
    /// (the usage scans, the snapshots): [`pages`], each page after others that open work.
    pub(super) fn pages<P, E, F, Fut>(
        &self,
        ask: F,
        token: fn(&P) -> Option<&str>,
    ) -> impl Stream<Item = Result<P, PageError<E>>>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<P, E>>,
    {
        pages(self.gate(Turn::GoesOn), ask, token)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::{PageError, Repeated, pages};

    /// A page, with the token of the next one if any.
    #[derive(Debug, PartialEq)]
    struct Page(Option<&'static str>);

    fn next(page: &Page) -> Option<&str> {
        page.0
    }

    fn any_gate() -> crate::ec2::budget::Gate {
        crate::ec2::budget::Budget::new(1).gate(crate::ec2::budget::Turn::GoesOn)
    }

    /// Reads the pages an endpoint answers (each with its next token, in turn): the token
    /// each page was asked with, and the read's last item.
    async fn read(answers: &[Option<&'static str>]) -> (Vec<Option<String>>, Result<Page, PageError<()>>) {
        let mut asked = Vec::new();
        let mut at = 0;
        let stream = pages(
            any_gate(),
            |token: Option<String>| {
                asked.push(token);
                let answer = answers.get(at).copied().flatten();
                at += 1;
                async move { Ok::<_, ()>(Page(answer)) }
            },
            next,
        );
        let mut read: Vec<_> = stream.collect().await;
        let last = read.pop().expect("at least one page");
        assert!(read.iter().all(Result::is_ok), "{read:?}");
        (asked, last)
    }

    #[tokio::test]
    async fn each_page_is_asked_with_the_token_of_the_one_before() {
        let (asked, last) = read(&[Some("a"), Some("b"), None]).await;
        assert_eq!(asked, [None, Some("a".to_owned()), Some("b".to_owned())]);
        assert_eq!(last, Ok(Page(None)));
    }

    #[tokio::test]
    async fn an_empty_token_ends_the_read() {
        assert_eq!(read(&[Some("")]).await, (vec![None], Ok(Page(Some("")))));
    }

    #[tokio::test]
    async fn a_repeated_token_fails_the_read_rather_than_end_it_as_if_complete() {
        let (asked, last) = read(&[Some("a"), Some("a"), Some("b")]).await;
        assert_eq!(asked, [None, Some("a".to_owned())], "not asked again");
        assert_eq!(last, Err(PageError::Repeated(Repeated("a".to_owned()))));
    }

    #[tokio::test]
    async fn an_error_ends_the_read_after_it_is_given() {
        let mut calls = 0;
        let stream = pages(
            any_gate(),
            |_| {
                calls += 1;
                async { Err::<Page, _>("refused") }
            },
            next,
        );
        let read: Vec<_> = stream.collect().await;
        assert_eq!(read, [Err(PageError::Refused("refused"))]);
        assert_eq!(calls, 1);
    }
}
