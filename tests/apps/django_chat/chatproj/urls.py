from django.http import JsonResponse
from django.urls import path


async def rooms(request):
    return JsonResponse({"rooms": ["lobby"], "async": True})


urlpatterns = [path("rooms", rooms)]
