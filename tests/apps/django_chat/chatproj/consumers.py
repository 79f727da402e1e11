"""A chat room: every message a member sends goes to the room's group, and from there to
every member (the sender too), with the member count."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

members = {}


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group = "chat_" + self.room
        await self.channel_layer.group_add(self.group, self.channel_name)
        members[self.room] = members.get(self.room, 0) + 1
        await self.accept()
        await self.send_json({"joined": self.room, "members": members[self.room]})

    async def disconnect(self, code):
        members[self.room] = members.get(self.room, 1) - 1
        await self.channel_layer.group_discard(self.group, self.channel_name)
        print("chat consumer left", self.room, "with", code, flush=True)

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "text": content.get("text", "")})

    async def chat_message(self, event):
        await self.send_json({"text": event["text"]})
