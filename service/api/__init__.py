"""The gRPC edge: servicer, conversions, status mapping and interceptors."""
