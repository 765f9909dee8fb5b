"""What a ControlNet reads and an artist looks at: the pose-expression renderer, hint formats,
location guidance and previews."""
