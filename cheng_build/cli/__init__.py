"""Command-line front ends. Only this layer prints or exits; everything below raises."""
