import os

from django.core.wsgi import get_wsgi_application

from config.middleware import RequestEncodingGuard

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = RequestEncodingGuard(get_wsgi_application())
