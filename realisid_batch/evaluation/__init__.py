"""`evaluate`: identity (to the reference and a held-out photo, copy-paste, confusion) by face size, place, pose,
expression and leak, runs side by side; `limit`: the face size below which the recogniser cannot measure."""
