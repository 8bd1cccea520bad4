// Reads a whitespace-separated description of a Rootfs on stdin (written by
// test/helpers/rootfs-gen.ts) and writes the capnp-rust message to stdout,
// building it in the order upstream puzzlefs's `fill_capnp` does (spec §2.5).
// Uses the untyped layout API because no capnpc-rust is packaged here.
use capnp::private::layout::{PointerBuilder, StructBuilder, StructSize};
use capnp::traits::FromPointerBuilder;
use std::io::{Read, Write};

struct Root<'a>(PointerBuilder<'a>);
impl<'a> FromPointerBuilder<'a> for Root<'a> {
    fn init_pointer(b: PointerBuilder<'a>, _len: u32) -> Self { Root(b) }
    fn get_from_pointer(b: PointerBuilder<'a>, _d: Option<&'a [capnp::Word]>) -> capnp::Result<Self> { Ok(Root(b)) }
}

const fn sz(data: u16, pointers: u16) -> StructSize { StructSize { data, pointers } }

struct Toks<'a>(std::str::SplitWhitespace<'a>);
impl<'a> Toks<'a> {
    fn s(&mut self) -> &'a str { self.0.next().expect("unexpected end of input") }
    fn n<T: std::str::FromStr>(&mut self) -> T where T::Err: std::fmt::Debug { self.s().parse().unwrap() }
    fn hex(&mut self) -> Vec<u8> {
        let t = self.s();
        if t == "-" { return vec![]; }
        (0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap()).collect()
    }
}

fn inode(t: &mut Toks, b: &StructBuilder) {
    b.set_data_field::<u64>(0, t.n());
    let (uid, gid, perm): (u32, u32, u16) = (t.n(), t.n(), t.n());
    let kind = t.s();
    let tag: u16 = match kind {
        "unknown" => 0, "fifo" => 1, "chr" => 2, "dir" => 3, "blk" => 4,
        "file" => 5, "lnk" => 6, "sock" => 7, "wht" => 8, _ => panic!("kind {kind}"),
    };
    b.set_data_field::<u16>(4, tag);
    match kind {
        "chr" | "blk" => {
            let (major, minor): (u64, u64) = (t.n(), t.n());
            let c = b.get_pointer_field(0).init_struct(sz(2, 0));
            c.set_data_field::<u64>(1, minor);
            c.set_data_field::<u64>(0, major);
        }
        "dir" => {
            let d = b.get_pointer_field(0).init_struct(sz(1, 1));
            d.set_bool_field(0, t.n::<u8>() == 1);
            let n: u32 = t.n();
            let l = d.get_pointer_field(0).init_struct_list(n, sz(1, 1));
            for i in 0..n {
                let e = l.get_struct_element(i);
                e.set_data_field::<u64>(0, t.n());
                e.get_pointer_field(0).set_data(&t.hex());
            }
        }
        "file" => {
            let n: u32 = t.n();
            let l = b.get_pointer_field(0).init_struct_list(n, sz(1, 1));
            for i in 0..n {
                let c = l.get_struct_element(i);
                c.set_data_field::<u64>(0, t.n());
                let r = c.get_pointer_field(0).init_struct(sz(2, 1));
                r.get_pointer_field(0).set_data(&t.hex());
                r.set_data_field::<u64>(0, t.n());
                r.set_bool_field(64, t.n::<u8>() == 1);
            }
        }
        _ => {}
    }
    b.set_data_field::<u32>(3, uid);
    b.set_data_field::<u32>(4, gid);
    b.set_data_field::<u16>(5, perm);
    if t.s() == "add" {
        let a = b.get_pointer_field(1).init_struct(sz(0, 2));
        let n: u32 = t.n();
        let l = a.get_pointer_field(0).init_struct_list(n, sz(0, 2));
        for i in 0..n {
            let x = l.get_struct_element(i);
            let (k, v) = (t.hex(), t.hex());
            x.get_pointer_field(1).set_data(&v);
            x.get_pointer_field(0).set_data(&k);
        }
        if t.s() == "target" {
            a.get_pointer_field(1).set_data(&t.hex());
        }
    }
}

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let mut t = Toks(input.split_whitespace());
    let mut message = capnp::message::Builder::new_default();
    let root: Root = message.init_root();
    let r = root.0.init_struct(sz(1, 2));
    assert_eq!(t.s(), "rootfs");
    r.set_data_field::<u64>(0, t.n());
    let layers: u32 = t.n();
    let ml = r.get_pointer_field(0).init_struct_list(layers, sz(0, 1));
    for li in 0..layers {
        let n: u32 = t.n();
        let il = ml.get_struct_element(li).get_pointer_field(0).init_struct_list(n, sz(3, 2));
        for i in 0..n {
            inode(&mut t, &il.get_struct_element(i));
        }
    }
    let nv: u32 = t.n();
    let vl = r.get_pointer_field(1).init_struct_list(nv, sz(0, 2));
    for i in 0..nv {
        let v = vl.get_struct_element(i);
        v.get_pointer_field(0).set_data(&t.hex());
        v.get_pointer_field(1).set_data(&t.hex());
    }
    let mut out = Vec::new();
    capnp::serialize::write_message(&mut out, &message).unwrap();
    std::io::stdout().write_all(&out).unwrap();
}
