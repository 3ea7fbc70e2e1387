"""The caption page's static files (plain HTML, CSS and JavaScript: no build step), served by
outputs/caption_routes.py."""
