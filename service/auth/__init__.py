"""API-key authentication, scopes and the per-key rate limit.

``Authenticator`` is shared by the gRPC interceptor
(service/api/interceptors/auth.py) and the HTTP endpoint
(service/integrations/http_server.py), so both accept the same keys.
"""

from service.auth.authenticator import Authenticator, build_authenticator

__all__ = ["Authenticator", "build_authenticator"]
