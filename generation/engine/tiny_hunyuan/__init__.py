"""Source files copied into the tiny HunyuanImage-style model directory (loaded via trust_remote_code)."""
