"""Who is who: member cards now; face galleries live beside this in their own modules."""
