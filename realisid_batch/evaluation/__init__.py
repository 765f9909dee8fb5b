"""`evaluate`: identity similarity by face size, place, pose, expression and leak, runs side by side."""
