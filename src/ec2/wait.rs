//! Waiting on an image: DescribeImages until a condition holds, the image fails, time runs
//! out, or the caller stops the wait. A new image can be invisible for a moment (EC2 is
//! eventually consistent): that is "not yet", for a grace period.

use std::time::{Duration, Instant};

use super::Ec2;
use crate::error::Error;
use crate::model::{Image, ImageState};
use crate::types::ImageId;

/// How often to look at a pending image, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    pub timeout: Duration,
    pub first_poll: Duration,
    pub max_poll: Duration,
    /// A new image can be invisible to DescribeImages for a moment (eventual consistency).
    pub not_found_grace: Duration,
}

impl WaitPolicy {
    pub fn with_timeout(timeout: Duration) -> WaitPolicy {
        WaitPolicy {
            timeout,
            first_poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(15),
            not_found_grace: Duration::from_mins(1),
        }
    }
}

/// One look at the image during a wait, for whoever shows progress.
#[derive(Debug, Clone, Copy)]
pub enum Look<'a> {
    /// Seen, in this state (`None`: the endpoint named none).
    Seen(Option<&'a ImageState>),
    /// Not visible yet (a new image, eventual consistency).
    NotVisibleYet,
}

/// How a wait ended, with the image as last seen.
pub struct WaitEnd {
    pub how: Ending,
    pub image: Option<Image>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Done,
    Failed,
    TimedOut,
    Interrupted,
}

impl Ec2 {
    /// Looks at the image until `done` says so, it fails, time runs out, or `stop` resolves;
    /// `progress` hears each look, with the time since the wait began.
    pub async fn watch_image(
        &self,
        id: &ImageId,
        policy: WaitPolicy,
        done: impl Fn(&Image) -> bool,
        stop: impl std::future::Future<Output = ()>,
        mut progress: impl FnMut(Look<'_>, Duration),
    ) -> Result<WaitEnd, Error> {
        let start = Instant::now();
        let mut interval = policy.first_poll;
        let mut last: Option<Image> = None;
        tokio::pin!(stop);
        let end = loop {
            let looked = tokio::select! {
                looked = self.image(id) => looked,
                () = &mut stop => break Ending::Interrupted,
            };
            match looked {
                Ok(Some(image)) => {
                    progress(Look::Seen(image.state.as_ref()), start.elapsed());
                    let how = if image.state.as_ref().is_some_and(ImageState::is_dead_end) {
                        Some(Ending::Failed)
                    } else if done(&image) {
                        Some(Ending::Done)
                    } else {
                        None
                    };
                    last = Some(image);
                    if let Some(how) = how {
                        break how;
                    }
                }
                Ok(None) if start.elapsed() < policy.not_found_grace => {
                    progress(Look::NotVisibleYet, start.elapsed());
                }
                Ok(None) => {
                    return Err(Error::NotFound {
                        what: format!("image {id}, created moments ago,"),
                        region: self.region.to_string(),
                    });
                }
                Err(err) => return Err(err),
            }
            let remaining = policy.timeout.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                break Ending::TimedOut;
            }
            tokio::select! {
                () = tokio::time::sleep(interval.min(remaining)) => {}
                () = &mut stop => break Ending::Interrupted,
            }
            interval = (interval * 2).min(policy.max_poll);
        };
        Ok(WaitEnd { how: end, image: last })
    }
}
