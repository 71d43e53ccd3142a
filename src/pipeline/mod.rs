//! The pipeline `deregister` and `cleanup` share: read once, decide purely, then act.
//!
//! ```text
//! select    which own images the user means             the command, from all own images
//! inventory what uses them; the account's snapshots     read_inventory: a few paginated scans
//! plan      inventory + policy -> Plan                  plan::plan, pure
//! show      the Plan as table / JSON; --dry-run stops   the command
//! execute   DeregisterImage, then DeleteSnapshot        execute::execute, bounded concurrency
//! report    the Plan with each entry's result           the command
//! ```

pub mod execute;
pub mod plan;
mod report;

use crate::ec2::Ec2;
use crate::error::Error;
use crate::model::Image;
use plan::Inventory;

/// Completes the inventory around the account's images: what uses the candidate images,
/// and with `orphans` the account's snapshots, read concurrently.
pub async fn read_inventory(
    ec2: &Ec2,
    images: Vec<Image>,
    candidates: &[String],
    orphans: bool,
) -> Result<Inventory, Error> {
    let snapshots = async {
        if orphans {
            ec2.own_snapshots().await
        } else {
            Ok(Vec::new())
        }
    };
    let (users, snapshots) = futures::try_join!(ec2.image_users(candidates), snapshots)?;
    Ok(Inventory {
        images,
        users,
        snapshots,
    })
}
