//! Imaging an instance reboots it unless `--no-reboot`: said, and for this very machine asked.

use super::{Reboot, Settings};
use crate::error::Error;
use crate::output::Printer;
use crate::types::InstanceId;

use super::Target;

/// Without `--yes`, a person at a terminal is asked before EC2 reboots the machine they are
/// on; anything else is refused with nothing sent.
pub async fn confirm_rebooting_this_machine(printer: &Printer, id: &InstanceId) -> Result<(), Error> {
    let refusal = format!(
        "EC2 reboots the instance it images, and {id} is this very machine: pass --yes to let it reboot \
         (sessions on it will drop), or --no-reboot (the image's file-system integrity is then not guaranteed)"
    );
    if !printer.can_ask() {
        return Err(Error::Usage(refusal));
    }
    match printer
        .ask(&format!(
            "EC2 will reboot this very machine ({id}) to image it, and your session will drop. Go ahead?"
        ))
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Usage("nothing was created".to_owned())),
        Err(err) => Err(Error::Usage(format!("could not read an answer ({err}); {refusal}"))),
    }
}

pub fn announce_reboot(printer: &Printer, args: &Settings, target: &Target) {
    let id = &target.instance_id;
    let would = if args.dry_run { "would" } else { "will" };
    if args.reboot == Reboot::No {
        let which = if target.this_machine {
            format!("this very machine ({id})")
        } else {
            format!("instance {id}")
        };
        printer.warn(format!(
            "--no-reboot: {which} keeps running while it is imaged, so the file-system integrity of the image is not guaranteed"
        ));
    } else if target.this_machine {
        printer.warn(format!(
            "EC2 {would} reboot this very machine ({id}) so that its file systems are consistent in the image; sessions on it will drop"
        ));
    } else {
        printer.note(format!(
            "EC2 {would} reboot instance {id} so that its file systems are consistent in the image (--no-reboot skips that)"
        ));
    }
}
