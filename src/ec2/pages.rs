//! Paged reads (DescribeImages, the usage scans, …), a page after another.
//!
//! The SDK's paginators hand each page over a channel that sets aside room for 32 answers
//! (an output and its error, about 13 KB) per read. A cleanup plan across an organization
//! has 128 accounts × regions at once, each with a dozen paged scans: those channels were a
//! sixth of the run's memory, made and dropped thousands of times. These reads ask the next
//! page when the last one has been handled, with nothing set aside.

use std::future::Future;

use futures::Stream;

/// Every page of a read: `ask` sends the request with the previous page's token (`None`
/// first), `token` reads the next one from a page. The pages end after one with no token,
/// an empty one, or the token just sent (an endpoint repeating itself would otherwise be
/// read forever; the SDK's paginators stop there too), or after an error.
pub fn pages<P, E, F, Fut>(mut ask: F, token: fn(&P) -> Option<&str>) -> impl Stream<Item = Result<P, E>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<P, E>>,
{
    // `None`: no more pages; `Some(token)`: ask for the page after `token`.
    futures::stream::unfold(Some(None), move |next: Option<Option<String>>| {
        // Boxed: an SDK request's future is kilobytes, and is only needed while it is in
        // flight, not carried in every future that reads pages.
        let asked = next.map(|sent| (Box::pin(ask(sent.clone())), sent));
        async move {
            let (answer, sent) = asked?;
            Some(match answer.await {
                Ok(page) => {
                    let more = token(&page)
                        .filter(|t| !t.is_empty() && Some(*t) != sent.as_deref())
                        .map(|t| Some(t.to_owned()));
                    (Ok(page), more)
                }
                Err(err) => (Err(err), None),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::pages;

    /// A page, with the token of the next one if any.
    #[derive(Debug, PartialEq)]
    struct Page(Option<&'static str>);

    fn next(page: &Page) -> Option<&str> {
        page.0
    }

    /// Reads the pages an endpoint answers (each with its next token, in turn); returns the
    /// token each page was asked with.
    async fn read(answers: &[Option<&'static str>]) -> Vec<Option<String>> {
        let mut asked = Vec::new();
        let mut at = 0;
        let stream = pages(
            |token: Option<String>| {
                asked.push(token);
                let answer = answers.get(at).copied().flatten();
                at += 1;
                async move { Ok::<_, ()>(Page(answer)) }
            },
            next,
        );
        let read: Vec<_> = stream.collect().await;
        assert!(read.iter().all(Result::is_ok));
        asked
    }

    #[tokio::test]
    async fn each_page_is_asked_with_the_token_of_the_one_before() {
        let asked = read(&[Some("a"), Some("b"), None]).await;
        assert_eq!(asked, [None, Some("a".to_owned()), Some("b".to_owned())]);
    }

    #[tokio::test]
    async fn an_empty_or_repeated_token_ends_the_read() {
        assert_eq!(read(&[Some("")]).await, [None]);
        assert_eq!(
            read(&[Some("a"), Some("a"), Some("b")]).await,
            [None, Some("a".to_owned())]
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_read_after_it_is_given() {
        let mut calls = 0;
        let stream = pages(
            |_| {
                calls += 1;
                async { Err::<Page, _>("refused") }
            },
            next,
        );
        let read: Vec<_> = stream.collect().await;
        assert_eq!(read, [Err("refused")]);
        assert_eq!(calls, 1);
    }
}
