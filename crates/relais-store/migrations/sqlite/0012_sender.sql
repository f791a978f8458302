-- The sender a message shows (an alphanumeric ID, a number or a short code); the
-- dispatcher paces each sender at its own rate.
ALTER TABLE messages ADD COLUMN sender TEXT;
