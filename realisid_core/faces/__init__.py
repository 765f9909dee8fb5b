"""Faces found in photos: detection results, the insightface packs and their analyzer, photos, poses."""
