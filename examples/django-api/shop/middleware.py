from django.utils import translation

from shop.services import site_language


class SiteLanguageMiddleware:
    """Answers a client that states no language (no Accept-Language, no language cookie) in the site's
    default language, which the staff can change at run time (shop.services.set_site_language). Goes after
    LocaleMiddleware, whose choice it replaces."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_ACCEPT_LANGUAGE" not in request.META and "django_language" not in request.COOKIES:
            language = site_language()
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
