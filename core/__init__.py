"""What both apps share and neither owns: the scope a service acts in, the errors a user can
cause, storable JSON, and the API's common pieces. Depends on no app but ``components_app``'s
models (a scope names a project); both apps import it, it imports neither app's logic."""
