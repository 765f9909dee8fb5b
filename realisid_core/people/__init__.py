"""People in the artist's picture: identities, identity tokens, face locations, and the People list."""
