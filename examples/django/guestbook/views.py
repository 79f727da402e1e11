import asyncio
import os
import threading

from django.http import JsonResponse
from django.shortcuts import redirect, render

from .forms import EntryForm
from .models import Entry


def index(request):
    """GET: list entries + form.  POST: validate, save, 303 back to /."""
    if request.method == "POST":
        form = EntryForm(request.POST)
        if form.is_valid():
            form.save()
            response = redirect("index")
            response.status_code = 303
            return response
        status = 400
    else:
        form = EntryForm()
        status = 200
    entries = Entry.objects.all()[:50]
    return render(
        request,
        "guestbook/index.html",
        {"form": form, "entries": entries},
        status=status,
    )


def whoami(request):
    """Which worker process / thread served this request (for tests)."""
    return JsonResponse({"pid": os.getpid(), "thread": threading.get_ident()})


async def hello_async(request):
    """An async view (served natively under ASGI): awaits, then counts the entries."""
    await asyncio.sleep(0.01)
    count = await Entry.objects.acount()
    return JsonResponse({"async": True, "entries": count, "path": request.path, "script_name": request.META.get("SCRIPT_NAME", "")})
