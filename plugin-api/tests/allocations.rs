//! What setting a value allocates, counted with a counting global allocator (this test
//! binary's own). Setting a key that is already present must not allocate a new key.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use plg_api::{Context, Value, ValueMap};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; the count is a thread-local `Cell`,
// which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn setting_a_present_key_allocates_nothing_for_the_key() {
    let mut ctx = Context::new();
    ctx.set("greeting", "first");
    let value = Value::from(7);
    assert_eq!(allocations_in(|| drop(ctx.set("greeting", value))), 0);
    assert_eq!(ctx.get::<i64>("greeting"), Ok(7));

    // `put` serializes the value (an integer allocates nothing) and sets it like `set`.
    assert_eq!(allocations_in(|| drop(ctx.put("greeting", &8_i64))), 0);
    assert_eq!(ctx.get::<i64>("greeting"), Ok(8));

    let mut map = ValueMap::new();
    map.insert(String::from("k"), 1);
    assert_eq!(allocations_in(|| drop(map.insert("k", 2))), 0);
    assert_eq!(map.get("k"), Some(&Value::from(2)));
}

#[test]
fn a_new_key_is_allocated_once() {
    let mut ctx = Context::new();
    ctx.set("a", 1);
    // The key's string, and room for the entry.
    let n = allocations_in(|| drop(ctx.set("b", 2)));
    assert!((1..=2).contains(&n), "{n} allocations");
    assert_eq!(ctx.get::<i64>("b"), Ok(2));
}

#[test]
fn writing_into_a_taken_string_allocates_nothing_once_it_is_large_enough() {
    let mut ctx = Context::new();
    ctx.set("name", "Ada");
    let greet = |ctx: &mut Context| {
        let mut greeting = ctx.take_string("greeting");
        greeting.push_str("hello ");
        greeting.push_str(ctx.get_str("name").unwrap());
        drop(ctx.set("greeting", greeting));
    };
    greet(&mut ctx);
    assert_eq!(allocations_in(|| greet(&mut ctx)), 0);
    assert_eq!(ctx.get_str("greeting"), Ok("hello Ada"));
    // Not a string there: a new one.
    ctx.set("n", 1);
    assert_eq!(ctx.take_string("n").as_str(), "");
    assert_eq!(ctx.take_string("absent").as_str(), "");
}
