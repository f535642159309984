// The inference service.
