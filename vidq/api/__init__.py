"""The HTTP face: app factory, routes, request/response schemas, problem+json errors, auth."""
